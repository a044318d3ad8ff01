package firmware

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// HTTPPath is where the HTTP server serves packages, the token after it.
const HTTPPath = "/" + PathPrefix

// Handler serves GET and HEAD of /fw/<token> on the agent's HTTP port,
// without credentials (the token is the credential, and lasts only as
// long as its operation): Range, ETag and Content-Length as
// http.ServeContent answers them. A request that sends nothing for the
// stall timeout is cut.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		token, ok := strings.CutPrefix(r.URL.Path, HTTPPath)
		if !ok || token == "" || strings.Contains(token, "/") {
			s.httpRefuse(w, refusedUnknown, http.StatusNotFound)
			return
		}
		g, err := s.lookup(r.Context(), token)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				s.httpRefuse(w, refusedUnknown, http.StatusNotFound)
				return
			}
			s.log.Warn("firmware grant lookup", "err", err)
			s.httpRefuse(w, refusedStore, http.StatusServiceUnavailable)
			return
		}
		if g.Scheme != "http" && g.Scheme != "https" {
			s.httpRefuse(w, refusedScheme, http.StatusNotFound)
			return
		}
		b, err := s.pkgs.get(r.Context(), g.Tenant, g.BinaryID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				s.httpRefuse(w, refusedUnknown, http.StatusNotFound)
				return
			}
			s.log.Warn("open firmware package", "tenant", g.Tenant, "binary", g.BinaryID, "err", err)
			s.httpRefuse(w, refusedStore, http.StatusServiceUnavailable)
			return
		}
		if ok, reason := s.transfers.acquire(g.Key, g.Tenant+"/"+g.DeviceID, g.Tenant+"/"+g.OperationID, time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(busyMaxAge))
			s.httpRefuse(w, reason, http.StatusServiceUnavailable)
			return
		}
		cw := &stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: s.cfg.StallTimeout}
		defer func() {
			s.transfers.release(g.Key, true, time.Now())
			s.metrics.served.WithLabelValues(g.Scheme).Add(float64(cw.n))
		}()
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, b.etag))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		h := &handle{p: s.pkgs, b: b, ctx: r.Context()}
		// read at each offset asked, never the whole package
		http.ServeContent(cw, r, "", b.bin.LastUpdated, io.NewSectionReader(h, 0, b.bin.Length))
	})
}

func (s *Service) httpRefuse(w http.ResponseWriter, reason string, status int) {
	s.metrics.refused.WithLabelValues(reason).Inc()
	http.Error(w, http.StatusText(status), status)
}

// stallWriter counts what it writes and gives every write the stall
// timeout to reach the device, so that a device that stops reading does
// not hold its slot and goroutine for ever.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	n     int64
}

func (w *stallWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}
