package sdk

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// Logger returns a logger for plugin code. Under the agent its lines reach
// the agent's log at their level (Debug, Info, Warn, Error), with the time
// they were written and their attributes, tagged with the plugin's name;
// run standalone they are JSON lines on standard error.
func Logger() *slog.Logger { return newLogger(hostStderr) }

// hostStderr is the standard error the program started with, which the
// agent reads log lines from. go-plugin's Serve points os.Stderr at a pipe
// of its own later, whose lines the agent only gets as plain output.
var hostStderr = os.Stderr

// timestampLayout is the time format go-plugin reads from a plugin's
// "@timestamp" (hclog's JSON format).
const timestampLayout = "2006-01-02T15:04:05.000000Z07:00"

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
				// the agent logs the line with the time it was written
				return slog.String("@timestamp", a.Value.Time().Format(timestampLayout))
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}
