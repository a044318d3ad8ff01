package lwm2m

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// ErrTransferRestart is returned by WritePackage when the device lost the
// block-wise transfer (it answered 4.08 Request Entity Incomplete, or
// refused to continue at the offset asked): the package must be sent
// again from offset 0.
var ErrTransferRestart = errors.New("the device lost the block-wise transfer: start again from offset 0")

// ErrPushBusy is returned by WritePackage while another push to the same
// device is under way: a device takes one package at a time.
var ErrPushBusy = errors.New("a package push to the device is already under way")

// DefaultPushBlockSize is the block size a push starts with (RFC 7959
// SZX 6), unless Config.PushBlockSize or WithPushBlockSize says less.
const DefaultPushBlockSize = 1024

type pushBlockSizeKey struct{}

// WithPushBlockSize makes WritePackage calls made with the returned
// context start with blocks of at most size bytes (a power of two from
// 16 to 1024): for a device whose settings limit the block size it
// takes, below what the server's Config.PushBlockSize allows.
func WithPushBlockSize(ctx context.Context, size int) context.Context {
	return context.WithValue(ctx, pushBlockSizeKey{}, size)
}

// szxOf returns the largest block size exponent whose size is at most
// size and divides offset, or false when no block size of 16 bytes or
// more does.
func szxOf(size int, offset int64) (blockwise.SZX, bool) {
	for szx := blockwise.SZX1024; ; szx-- {
		if int(szx.Size()) <= size && offset%szx.Size() == 0 {
			return szx, true
		}
		if szx == blockwise.SZX16 {
			return 0, false
		}
	}
}

// blockAnswers keeps, for the blocks of pushes in flight, the code and
// Block1 option of the device's answer as it arrived. go-coap's own
// block-wise layer would take a 2.31 Continue to a request it did not
// split itself as its cue to send a block of its own, and strips Block1
// from the answers it hands on; monitor records both here first.
type blockAnswers struct {
	n  atomic.Int32 // entries in m, read without the lock on every datagram
	mu sync.Mutex
	m  map[string]*blockAnswer // by token
}

type blockAnswer struct {
	code      codes.Code
	block1    uint32
	hasBlock1 bool
	seen      bool
}

func (b *blockAnswers) add(token []byte) *blockAnswer {
	a := &blockAnswer{}
	b.mu.Lock()
	if b.m == nil {
		b.m = map[string]*blockAnswer{}
	}
	b.m[string(token)] = a
	b.n.Store(int32(len(b.m)))
	b.mu.Unlock()
	return a
}

func (b *blockAnswers) remove(token []byte) {
	b.mu.Lock()
	delete(b.m, string(token))
	b.n.Store(int32(len(b.m)))
	b.mu.Unlock()
}

// capture records m if it answers a block in flight. A 2.31 Continue
// goes on to go-coap as 2.04 Changed, which its block-wise layer passes
// to the request's waiter untouched; the waiter reads the true code
// from here.
func (b *blockAnswers) capture(m *pool.Message) {
	if b.n.Load() == 0 || m.Code() < codes.Created || len(m.Token()) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.m[string(m.Token())]
	if a == nil {
		return
	}
	a.code, a.seen = m.Code(), true
	a.block1, a.hasBlock1 = 0, false
	if v, err := m.GetOptionUint32(message.Block1); err == nil {
		a.block1, a.hasBlock1 = v, true
	}
	if a.code == codes.Continue {
		m.SetCode(codes.Changed)
	}
}

func (b *blockAnswers) get(token []byte) blockAnswer {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.m[string(token)]; a != nil {
		return *a
	}
	return blockAnswer{}
}

// WritePackage writes size bytes of pkg to path (normally /5/0/0) of a
// registered device with CoAP Block1 (RFC 7959), starting at byte offset
// from (a multiple of the block size; 0 to start), and calls progress
// after each block the device acknowledged with the offset reached. It
// returns nil once the last block is answered 2.04 (Changed).
//
// Each block is a confirmable request of its own through the device's
// request slots (Config.NStart), with the retransmissions and the
// request timeout of any other request; one block at a time is read
// from pkg. The first block is as large as Config.PushBlockSize (or
// WithPushBlockSize) allows; a device that answers 2.31 Continue with a
// smaller Block1 size gets blocks of that size from then on. A block
// without an answer returns an error wrapping ErrTimeout after progress
// reported how far the device got, so that the caller may resume from
// there later; a device that lost the transfer meanwhile makes the
// resumed push return ErrTransferRestart. A second push to a device
// while one runs returns ErrPushBusy at once.
func (s *Server) WritePackage(ctx context.Context, endpoint string, path node.Path, pkg io.ReaderAt, size, from int64, progress func(offset int64)) error {
	fail := func(off int64, err error) error {
		return fmt.Errorf("push %s to %s: at offset %d of %d: %w", path, endpoint, off, size, err)
	}
	if size <= 0 || from < 0 || from >= size {
		return fail(from, errors.New("offset outside the package"))
	}
	limit := s.cfg.PushBlockSize
	if n, ok := ctx.Value(pushBlockSizeKey{}).(int); ok && n > 0 && n < limit {
		limit = n
	}
	szx, ok := szxOf(limit, from)
	if !ok {
		return fail(from, errors.New("offset is not a multiple of a block size"))
	}
	t, err := s.target(endpoint)
	if err != nil {
		return fail(from, err)
	}
	if _, busy := s.pushing.LoadOrStore(endpoint, struct{}{}); busy {
		return fail(from, ErrPushBusy)
	}
	defer s.pushing.Delete(endpoint)

	buf := make([]byte, szx.Size())
	for off := from; ; {
		n := min(szx.Size(), size-off)
		if _, err := pkg.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return fail(off, fmt.Errorf("read package: %w", err))
		}
		more := off+n < size
		num := off / szx.Size()
		if err := s.pace(ctx, t.rs); err != nil {
			return fail(off, err)
		}
		code, ack, err := s.pushBlock(ctx, t, path, szx, num, more, size, buf[:n])
		if err != nil {
			return fail(off, err)
		}
		switch {
		case code == codes.RequestEntityIncomplete, code == codes.BadRequest && num > 0:
			return fail(off, fmt.Errorf("%w (device answered %s)", ErrTransferRestart, codeString(code)))
		case !more && (code == codes.Changed || code == codes.Created):
			if progress != nil {
				progress(size)
			}
			return nil
		case more && (code == codes.Continue || code == codes.Changed):
			// 2.04 to a block with more to come: the device takes the
			// package as it comes (RFC 7959 2.3, non-atomic)
		default:
			return fail(off, &ResponseError{Code: code})
		}
		if ack.ok {
			if ack.num*ack.szx.Size() != off {
				// the device acknowledged another block than the one sent
				return fail(off, fmt.Errorf("%w (device acknowledged block %d of %d bytes)", ErrTransferRestart, ack.num, ack.szx.Size()))
			}
			if ack.szx < szx {
				szx = ack.szx // RFC 7959 2.3: later blocks at the device's size
			}
		}
		off += n
		if progress != nil {
			progress(off)
		}
	}
}

// pace waits until the device may answer a block without its answer
// being dropped by the peer rate limit (Config.PeerRate): a push sent
// faster would have its answers dropped past the burst, each block then
// waiting for a retransmission, and a sleeping device could fall asleep
// with its last answer lost. The device keeps one token besides, for
// an Update or a notification meanwhile.
func (s *Server) pace(ctx context.Context, rs *regState) error {
	s.mu.RLock()
	key := addrString(rs.addr)
	s.mu.RUnlock()
	wait := s.limiter.Until(key, time.Now(), 2)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// blockAck is the Block1 option of a device's answer.
type blockAck struct {
	ok  bool
	szx blockwise.SZX
	num int64
}

// pushBlock sends one block of a push and returns the device's answer
// code and Block1 option.
func (s *Server) pushBlock(ctx context.Context, t target, p node.Path, szx blockwise.SZX, num int64, more bool, size int64, block []byte) (codes.Code, blockAck, error) {
	opt, err := blockwise.EncodeBlockOption(szx, num, more)
	if err != nil {
		return 0, blockAck{}, err
	}
	var token []byte
	defer func() {
		if token != nil {
			s.blocks.remove(token)
		}
	}()
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		req, err := c.NewPutRequest(ctx, t.coapPath(p), message.AppOctets, bytes.NewReader(block))
		if err != nil {
			return nil, err
		}
		req.SetOptionUint32(message.Block1, opt)
		req.SetOptionUint32(message.Size1, uint32(min(size, int64(^uint32(0)))))
		token = append([]byte(nil), req.Token()...)
		s.blocks.add(token)
		return req, nil
	})
	if err != nil {
		return 0, blockAck{}, err
	}
	seen := s.blocks.get(token)
	code := a.code
	if seen.seen {
		code = seen.code
	}
	var ack blockAck
	if seen.hasBlock1 {
		if bszx, bnum, _, err := blockwise.DecodeBlockOption(seen.block1); err == nil && bszx <= blockwise.SZX1024 {
			ack = blockAck{ok: true, szx: bszx, num: bnum}
		}
	}
	return code, ack, nil
}
