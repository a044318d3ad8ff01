package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
)

// The development banner names where the web console is, for the HTTP
// addresses a browser can open, and says nothing of one it cannot.
func TestDevBannerNamesTheConsole(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:8080", "Web console: http://127.0.0.1:8080/"},
		{":8080", "Web console: http://127.0.0.1:8080/"},
		{"0.0.0.0:9000", "Web console: http://127.0.0.1:9000/"},
		{"[::1]:8080", "Web console: http://[::1]:8080/"},
		{"127.0.0.1:0", ""},
	} {
		cfg := config.Default()
		cfg.HTTPAddr = tc.addr
		var out bytes.Buffer
		devBanner(&out, slog.New(slog.DiscardHandler), cfg, nil)
		got := out.String()
		if tc.want == "" && strings.Contains(got, "Web console") || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("HTTP address %s: banner %q, want %q", tc.addr, got, tc.want)
		}
	}
}
