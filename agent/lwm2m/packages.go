package lwm2m

import (
	"bytes"
	"context"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// PackagePath is the first Uri-Path segment of the firmware packages
// the agent serves on its LwM2M ports: a device pulls one with a GET of
// /fw/<token> (Config.Packages).
const PackagePath = "fw"

// DefaultPackageWorkers bounds the package requests answered at once.
const DefaultPackageWorkers = 64

// PackageRequest is a device's GET of /fw/<token>.
type PackageRequest struct {
	Token string
	// Secure says the request came over DTLS; Identity is then the PSK
	// identity its session was authenticated with.
	Secure   bool
	Identity string
	Peer     string
	// Block2 is the request's Block2 option, when HasBlock2.
	Block2    uint32
	HasBlock2 bool
}

// PackageResponse is the answer to a PackageRequest: Code, and with
// 2.05 Content the block in Payload and its options.
type PackageResponse struct {
	Code    codes.Code
	Payload []byte
	Block2  uint32
	Size2   uint32
	ETag    []byte
	// MaxAge is sent when not zero: with 5.03, the seconds to wait.
	MaxAge    uint32
	HasBlock2 bool
	HasSize2  bool
}

// PackageHandler serves firmware packages (Config.Packages).
// ServePackage runs on a goroutine of the server, at most
// Config.PackageWorkers at once, and returns promptly once ctx is done.
type PackageHandler interface {
	ServePackage(ctx context.Context, req PackageRequest) PackageResponse
}

// packageToken returns the token of a GET of /fw/<token>.
func packageToken(m *pool.Message) (string, bool) {
	if m.Code() != codes.GET || (m.Type() != message.Confirmable && m.Type() != message.NonConfirmable) {
		return "", false
	}
	path, err := m.Options().Path()
	if err != nil {
		return "", false
	}
	seg := splitPath(path)
	if len(seg) != 2 || seg[0] != PackagePath {
		return "", false
	}
	return seg[1], true
}

// servePackage answers a GET of a package on a goroutine of its own. It
// is called from monitor, ahead of go-coap's block-wise layer, which
// would otherwise keep the whole response of a GET in memory and answer
// its later blocks itself: here every block is a request of its own,
// read from the store at the size the device asked for, and counted
// against the transfer limits. A GET is safe to repeat, so a duplicate
// is answered again rather than remembered. Beyond PackageWorkers, the
// answer is 5.03 with Max-Age 1.
func (s *Server) servePackage(cc *udpClient.Conn, m *pool.Message, token string) {
	ctx := s.ctx()
	if ctx == nil || ctx.Err() != nil {
		return
	}
	peer := peerOf(cc)
	req := PackageRequest{Token: token, Secure: peer.secure, Identity: peer.identity, Peer: addrString(cc.RemoteAddr())}
	if b, err := m.GetOptionUint32(message.Block2); err == nil {
		req.Block2, req.HasBlock2 = b, true
	}
	typ, mid, tok := m.Type(), m.MessageID(), bytes.Clone(m.Token())
	select {
	case s.packageSlots <- struct{}{}:
	default:
		s.writePackage(ctx, cc, typ, mid, tok, PackageResponse{Code: codes.ServiceUnavailable, MaxAge: 1})
		return
	}
	s.packageWG.Go(func() {
		defer func() { <-s.packageSlots }()
		start := time.Now()
		resp := s.cfg.Packages.ServePackage(ctx, req)
		if ctx.Err() != nil {
			return
		}
		s.writePackage(ctx, cc, typ, mid, tok, resp)
		s.log.Debug("package request", "peer", req.Peer, "code", resp.Code, "took", time.Since(start))
	})
}

// writePackage sends resp as the answer to the request typ, mid, tok:
// piggybacked on the ACK of a CON, as a NON to a NON.
func (s *Server) writePackage(ctx context.Context, cc *udpClient.Conn, typ message.Type, mid int32, tok []byte, resp PackageResponse) {
	msg := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(msg)
	msg.SetCode(resp.Code)
	msg.SetToken(tok)
	if typ == message.Confirmable {
		msg.SetType(message.Acknowledgement)
		msg.SetMessageID(mid)
	} else {
		msg.SetType(message.NonConfirmable)
		msg.SetMessageID(cc.GetMessageID())
	}
	if len(resp.ETag) > 0 {
		msg.SetOptionBytes(message.ETag, resp.ETag)
	}
	if resp.MaxAge > 0 {
		msg.SetOptionUint32(message.MaxAge, resp.MaxAge)
	}
	if resp.HasBlock2 {
		msg.SetOptionUint32(message.Block2, resp.Block2)
	}
	if resp.HasSize2 {
		msg.SetOptionUint32(message.Size2, resp.Size2)
	}
	if resp.Code == codes.Content {
		msg.SetContentFormat(message.AppOctets)
		msg.SetBody(bytes.NewReader(resp.Payload))
	}
	if err := cc.Session().WriteMessage(msg); err != nil {
		s.log.Debug("cannot answer a package request", "peer", addrString(cc.RemoteAddr()), "err", err)
	}
}
