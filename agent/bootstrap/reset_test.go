package bootstrap

import (
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
)

// TestResetNotAnswered: an RST, empty or malformed, gets no answer, and
// one carrying a Bootstrap-Request is no request.
func TestResetNotAnswered(t *testing.T) {
	ts := startServer(t, nil)
	resets := rawcoap.Resets("bs", "ep=rst-dev1")
	for _, d := range resets {
		t.Run(d.Name, func(t *testing.T) {
			rawcoap.AssertNotAnswered(t, ts.srv.Addr(), "bs", d.Bytes)
		})
	}
	// the two probes of each check are the only requests
	if st := ts.srv.Stats(); st.Requests != uint64(2*len(resets)) || st.Sessions != 0 {
		t.Fatalf("an RST was taken for a request: %+v", st)
	}
}
