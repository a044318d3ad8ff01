package bootstrap

import (
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
)

// TestResetNotAnswered: an RST, empty or malformed, gets no answer, and
// one carrying a Bootstrap-Request is no request.
func TestResetNotAnswered(t *testing.T) {
	ts := startServer(t, nil)
	for _, d := range rawcoap.Resets("bs", "ep=rst-dev1") {
		t.Run(d.Name, func(t *testing.T) {
			rawcoap.AssertNotAnswered(t, ts.srv.Addr(), d.Bytes)
		})
	}
	if st := ts.srv.Stats(); st.Requests != 0 || st.Sessions != 0 {
		t.Fatalf("an RST was taken for a request: %+v", st)
	}
}
