package sdk

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// Logger returns a logger for plugin code. Under the agent its lines reach
// the agent's log with their level and attributes, tagged with the
// plugin's name; run standalone they are JSON lines on standard error.
func Logger() *slog.Logger { return newLogger(os.Stderr) }

func newLogger(w io.Writer) *slog.Logger {
	// go-plugin reads hclog's JSON keys from the plugin's standard error.
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{} // the agent stamps the line when it reads it
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}
