package firmware

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// defaultSZX is the block size of a device that asks without Block2:
// 1024 bytes, the largest that fits the LwM2M ports' datagrams.
const defaultSZX = 6

// parseBlock2 decodes a request's Block2 option (RFC 7959 section 2.2):
// the block number and its size exponent. BERT (SZX 7) is for reliable
// transports; over UDP it is read as 1024-byte blocks.
func parseBlock2(v uint32, has bool) (num int64, szx uint32) {
	if !has {
		return 0, defaultSZX
	}
	szx = v & 7
	if szx == 7 {
		szx = defaultSZX
	}
	return int64(v >> 4), szx
}

// ServePackage answers a device's GET of /fw/<token> on the LwM2M ports:
// one block of the package, at the size the device asked for, read from
// the store through a small shared cache. An unknown, revoked or
// expired token, and a coaps grant asked by another device or over plain
// CoAP, are all 4.04, so that none tells a prober more than the others.
func (s *Service) ServePackage(ctx context.Context, req lwm2m.PackageRequest) lwm2m.PackageResponse {
	g, err := s.lookup(ctx, req.Token)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s.refuse(refusedUnknown, codes.NotFound)
		}
		s.log.Warn("firmware grant lookup", "err", err)
		return s.refuse(refusedStore, codes.ServiceUnavailable)
	}
	scheme := "coap"
	if req.Secure {
		scheme = "coaps"
	}
	switch g.Scheme {
	case "coaps":
		if !req.Secure || !s.identityOf(ctx, req.Identity, g) {
			return s.refuse(refusedIdentity, codes.NotFound)
		}
	case "coap":
	default:
		return s.refuse(refusedScheme, codes.NotFound)
	}
	num, szx := parseBlock2(req.Block2, req.HasBlock2)
	size := int64(1) << (szx + 4)
	b, err := s.pkgs.get(ctx, g.Tenant, g.BinaryID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s.refuse(refusedUnknown, codes.NotFound)
		}
		s.log.Warn("open firmware package", "tenant", g.Tenant, "binary", g.BinaryID, "err", err)
		return s.refuse(refusedStore, codes.ServiceUnavailable)
	}
	total := b.bin.Length
	off := num * size
	if off > total || (off == total && total > 0) || num > 1<<20 {
		return s.refuse(refusedBlock, codes.BadOption)
	}
	now := time.Now()
	if ok, reason := s.transfers.acquire(g.Key, g.Tenant+"/"+g.DeviceID, g.Tenant+"/"+g.OperationID, now); !ok {
		r := s.refuse(reason, codes.ServiceUnavailable)
		r.MaxAge = busyMaxAge
		return r
	}
	buf := make([]byte, min(size, total-off))
	n, err := s.pkgs.readAt(ctx, b, buf, off)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
		s.transfers.release(g.Key, true, time.Now())
		if errors.Is(err, store.ErrNotFound) {
			s.pkgs.forget(g.Tenant, g.BinaryID)
			return s.refuse(refusedUnknown, codes.NotFound)
		}
		s.log.Warn("read firmware package", "tenant", g.Tenant, "binary", g.BinaryID, "offset", off, "err", err)
		return s.refuse(refusedStore, codes.ServiceUnavailable)
	}
	more := off+int64(n) < total
	s.transfers.release(g.Key, !more, time.Now())
	s.metrics.served.WithLabelValues(scheme).Add(float64(n))
	block := uint32(num)<<4 | szx
	if more {
		block |= 1 << 3
	}
	return lwm2m.PackageResponse{Code: codes.Content, Payload: buf[:n], ETag: b.etag,
		Block2: block, HasBlock2: true, Size2: uint32(total), HasSize2: true}
}

func (s *Service) refuse(reason string, code codes.Code) lwm2m.PackageResponse {
	s.metrics.refused.WithLabelValues(reason).Inc()
	return lwm2m.PackageResponse{Code: code}
}

// identityOf tells whether a DTLS session's PSK identity is the one
// bound to the grant's device: a device authenticates as itself only.
func (s *Service) identityOf(ctx context.Context, identity string, g store.FirmwareGrant) bool {
	if identity == "" {
		return false
	}
	tenant, id, err := s.st.DeviceByPSKIdentity(ctx, store.PSKServer, identity)
	return err == nil && tenant == g.Tenant && id == g.DeviceID
}

var _ lwm2m.PackageHandler = (*Service)(nil)
