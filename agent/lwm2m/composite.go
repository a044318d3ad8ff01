package lwm2m

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// The composite operations of LwM2M 1.1 (Core TS 6.3.8, 6.3.9, 6.4.3):
// FETCH or iPATCH on the root with a SenML payload naming the paths.

// compositeFormat is the SenML format for composite requests: the
// device's preferred one when it is SenML, else SenML CBOR.
func compositeFormat(t target) codec.Format {
	if t.format == codec.SenMLJSON {
		return codec.SenMLJSON
	}
	return codec.SenMLCBOR
}

// encodePathList encodes the request payload of Read-Composite and
// Observe-Composite: SenML records holding only a name.
func encodePathList(f codec.Format, paths []node.Path) ([]byte, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths")
	}
	var b bytes.Buffer
	switch f {
	case codec.SenMLJSON:
		b.WriteByte('[')
		for i, p := range paths {
			if i > 0 {
				b.WriteByte(',')
			}
			// Paths are digits and slashes: nothing to escape.
			b.WriteString(`{"n":"` + p.String() + `"}`)
		}
		b.WriteByte(']')
	case codec.SenMLCBOR:
		cborHead(&b, 4, uint64(len(paths))) // array
		for _, p := range paths {
			s := p.String()
			cborHead(&b, 5, 1) // map of one pair
			cborHead(&b, 0, 0) // label n
			cborHead(&b, 3, uint64(len(s)))
			b.WriteString(s)
		}
	default:
		return nil, fmt.Errorf("%w: %v for a path list", codec.ErrUnsupported, f)
	}
	return b.Bytes(), nil
}

// cborHead writes a CBOR item head of major type major with argument n.
func cborHead(b *bytes.Buffer, major byte, n uint64) {
	m := major << 5
	switch {
	case n < 24:
		b.WriteByte(m | byte(n))
	case n <= 0xff:
		b.WriteByte(m | 24)
		b.WriteByte(byte(n))
	case n <= 0xffff:
		b.WriteByte(m | 25)
		b.WriteByte(byte(n >> 8))
		b.WriteByte(byte(n))
	default:
		b.WriteByte(m | 26)
		b.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
}

func fetchRequest(t target, f codec.Format, payload []byte) func(context.Context, *udpClient.Conn) (*pool.Message, error) {
	return func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		req, err := c.NewFetchRequest(ctx, t.coapPath(node.Root), message.MediaType(f), bytes.NewReader(payload))
		if err == nil {
			withAccept(f)(req)
		}
		return req, err
	}
}

// ReadComposite reads several paths in one request (LwM2M 1.1).
func (s *Server) ReadComposite(ctx context.Context, ep string, paths []node.Path) ([]node.Record, error) {
	t, err := s.target(ep)
	if err != nil {
		return nil, err
	}
	f := compositeFormat(t)
	payload, err := encodePathList(f, paths)
	if err != nil {
		return nil, fmt.Errorf("read composite of %s: %w", ep, err)
	}
	a, err := s.exchange(ctx, t, fetchRequest(t, f, payload))
	if err != nil {
		return nil, fmt.Errorf("read composite of %s: %w", ep, err)
	}
	if err := expect(a, codes.Content); err != nil {
		return nil, fmt.Errorf("read composite of %s: %w", ep, err)
	}
	return s.decode(a, f, node.Root)
}

// WriteComposite writes records at several paths in one iPATCH request
// (LwM2M 1.1).
func (s *Server) WriteComposite(ctx context.Context, ep string, recs []node.Record) error {
	t, err := s.target(ep)
	if err != nil {
		return err
	}
	f := compositeFormat(t)
	payload, err := codec.Encode(f, node.Root, recs)
	if err != nil {
		return fmt.Errorf("write composite of %s: encode %v: %w", ep, f, err)
	}
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		return c.NewIPatchRequest(ctx, t.coapPath(node.Root), message.MediaType(f), bytes.NewReader(payload))
	})
	if err != nil {
		return fmt.Errorf("write composite of %s: %w", ep, err)
	}
	if err := expect(a, codes.Changed); err != nil {
		return fmt.Errorf("write composite of %s: %w", ep, err)
	}
	return nil
}

// compositeKey names a composite observation by its set of paths.
func compositeKey(paths []node.Path) string {
	ss := make([]string, len(paths))
	for i, p := range paths {
		ss[i] = p.String()
	}
	slices.Sort(ss)
	return "composite:" + strings.Join(ss, ",")
}

// ObserveComposite observes several paths with one FETCH (LwM2M 1.1) and
// returns the first answer's values; notifications reach Hooks.Values
// with the root as observed path. Observing the same set again replaces
// the earlier observation.
func (s *Server) ObserveComposite(ctx context.Context, ep string, paths []node.Path) ([]node.Record, error) {
	t, err := s.target(ep)
	if err != nil {
		return nil, err
	}
	f := compositeFormat(t)
	payload, err := encodePathList(f, paths)
	if err != nil {
		return nil, fmt.Errorf("observe composite of %s: %w", ep, err)
	}
	o := &observation{key: compositeKey(paths), path: node.Root, composite: slices.Clone(paths), format: f}
	recs, err := s.observe(ctx, t, o, fetchRequest(t, f, payload))
	if err != nil {
		return recs, fmt.Errorf("observe composite of %s: %w", ep, err)
	}
	return recs, nil
}

// CancelObserveComposite ends the composite observation of paths
// actively (FETCH with Observe=1 on its token).
func (s *Server) CancelObserveComposite(ctx context.Context, ep string, paths []node.Path) error {
	t, err := s.target(ep)
	if err != nil {
		return err
	}
	err = s.cancelObserve(ctx, t, compositeKey(paths), func(ctx context.Context, c *udpClient.Conn, o *observation) (*pool.Message, error) {
		payload, err := encodePathList(o.format, o.composite)
		if err != nil {
			return nil, err
		}
		return fetchRequest(t, o.format, payload)(ctx, c)
	})
	if err != nil {
		return fmt.Errorf("cancel composite observation of %s: %w", ep, err)
	}
	return nil
}
