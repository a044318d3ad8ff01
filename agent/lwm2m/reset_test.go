package lwm2m

import (
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
)

// TestResetNotAnswered: an RST, empty or malformed, gets no answer, and
// one carrying a Register registers nothing.
func TestResetNotAnswered(t *testing.T) {
	s, _ := startServer(t, Config{})
	for _, d := range rawcoap.Resets("rd", "ep=rst-dev1") {
		t.Run(d.Name, func(t *testing.T) {
			rawcoap.AssertNotAnswered(t, s.Addr(), "rd", d.Bytes)
		})
	}
	if regs := s.Registrations(); len(regs) != 0 {
		t.Fatalf("an RST registered: %+v", regs)
	}
}
