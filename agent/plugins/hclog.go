package plugins

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// hclogger is go-plugin's logger on top of the agent's slog logger: the
// lines of plugin processes (and go-plugin's own) land in the agent's log
// with their attributes. A plugin's lines keep their level (Trace becomes
// Debug) and the time the plugin wrote them, or the time the agent read
// them when they carry none; go-plugin's own lines at Info and below are
// logged at Debug, since they tell of its machinery.
type hclogger struct {
	l *slog.Logger
	// program is the base name of the plugin's executable: go-plugin
	// logs what the plugin writes through a logger of that name.
	program string
	name    string
	args    []any
}

var _ hclog.Logger = (*hclogger)(nil)

func newHCLogger(l *slog.Logger, program string) hclog.Logger {
	return &hclogger{l: l, program: program}
}

func slogLevel(level hclog.Level, fromPlugin bool) slog.Level {
	switch level {
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	case hclog.Info:
		if fromPlugin {
			return slog.LevelInfo
		}
	}
	return slog.LevelDebug
}

// timestampKey is the attribute go-plugin gives a plugin's line its time
// in (hclog.TimeFormat; the zero time when the line had none).
const timestampKey = "timestamp"

func (h *hclogger) Log(level hclog.Level, msg string, args ...any) {
	fromPlugin := h.program != "" && h.name == h.program
	lv := slogLevel(level, fromPlugin)
	ctx := context.Background()
	if !h.l.Enabled(ctx, lv) {
		return
	}
	at := time.Now()
	all := make([]any, 0, len(h.args)+len(args))
	all = append(all, h.args...)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			all = append(all, args[i])
			break
		}
		if k, _ := args[i].(string); k == timestampKey && fromPlugin {
			if s, ok := args[i+1].(string); ok {
				if t, err := time.Parse(hclog.TimeFormat, s); err == nil && t.Year() > 1 {
					at = t
				}
				continue
			}
		}
		if k, _ := args[i].(string); k == "plugin" && !fromPlugin {
			// go-plugin names the executable "plugin", which would be a
			// second plugin attribute beside the agent's (its name): in a
			// JSON log the later one wins
			all = append(all, "path", args[i+1])
			continue
		}
		all = append(all, args[i], args[i+1])
	}
	if h.name != "" && !fromPlugin {
		all = append(all, "logger", h.name)
	}
	r := slog.NewRecord(at, lv, msg, 0)
	r.Add(all...)
	_ = h.l.Handler().Handle(ctx, r)
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) IsTrace() bool { return h.IsDebug() }
func (h *hclogger) IsDebug() bool { return h.l.Enabled(context.Background(), slog.LevelDebug) }
func (h *hclogger) IsInfo() bool  { return h.l.Enabled(context.Background(), slog.LevelInfo) }
func (h *hclogger) IsWarn() bool  { return h.l.Enabled(context.Background(), slog.LevelWarn) }
func (h *hclogger) IsError() bool { return h.l.Enabled(context.Background(), slog.LevelError) }

func (h *hclogger) ImpliedArgs() []any { return h.args }

func (h *hclogger) With(args ...any) hclog.Logger {
	return &hclogger{l: h.l, program: h.program, name: h.name, args: append(append([]any(nil), h.args...), args...)}
}

func (h *hclogger) Name() string { return h.name }

func (h *hclogger) Named(name string) hclog.Logger {
	n := name
	if h.name != "" {
		n = h.name + "." + name
	}
	return &hclogger{l: h.l, program: h.program, name: n, args: h.args}
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	return &hclogger{l: h.l, program: h.program, name: name, args: h.args}
}

// SetLevel is a no-op: the agent's handler decides what is logged.
func (h *hclogger) SetLevel(hclog.Level) {}

// GetLevel tells go-plugin the lowest level worth passing on: it drops a
// plugin's lines below it before parsing them.
func (h *hclogger) GetLevel() hclog.Level {
	switch {
	case h.IsDebug():
		return hclog.Trace
	case h.IsInfo():
		return hclog.Info
	case h.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}

func (h *hclogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		h.Debug(strings.TrimRight(string(p), "\n"))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// maxOutputLine bounds a line of a plugin's plain output the agent keeps
// before it logs it: a plugin writing without newlines must not fill the
// agent's memory.
const maxOutputLine = 64 << 10

// outputLines logs what a plugin writes to the standard output or error
// that go-plugin forwards after the plugin started (plain text, not log
// records), one log line per line written, at Info. Its Write is called
// from one goroutine at a time (go-plugin's copy of the stream).
type outputLines struct {
	log    *slog.Logger
	stream string
	buf    []byte
}

func newOutputLines(log *slog.Logger, stream string) *outputLines {
	return &outputLines{log: log, stream: stream}
}

func (o *outputLines) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			o.buf = append(o.buf, p...)
			if len(o.buf) >= maxOutputLine {
				o.flush()
			}
			break
		}
		o.buf = append(o.buf, p[:i]...)
		o.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (o *outputLines) flush() {
	if line := strings.TrimRight(string(o.buf), "\r"); line != "" {
		o.log.Info(line, "stream", o.stream)
	}
	o.buf = o.buf[:0]
}
