package psk

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLog is the one logger every DTLS association of a listener logs
// through. pion otherwise builds a logger factory and a logger for each
// association (reading its environment variables and making six
// log.Loggers), a cost paid on every handshake, and writes to stderr
// outside the agent's structured log. What pion logs is about one peer:
// all of it goes to Debug.
type pionLog struct{ log *slog.Logger }

func (p pionLog) NewLogger(string) logging.LeveledLogger { return p }

func (p pionLog) logf(format string, args ...any) {
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (p pionLog) Trace(string)                      {}
func (p pionLog) Tracef(string, ...any)             {}
func (p pionLog) Debug(msg string)                  { p.log.Debug(msg) }
func (p pionLog) Debugf(format string, args ...any) { p.logf(format, args...) }
func (p pionLog) Info(msg string)                   { p.log.Debug(msg) }
func (p pionLog) Infof(format string, args ...any)  { p.logf(format, args...) }
func (p pionLog) Warn(msg string)                   { p.log.Debug(msg) }
func (p pionLog) Warnf(format string, args ...any)  { p.logf(format, args...) }
func (p pionLog) Error(msg string)                  { p.log.Debug(msg) }
func (p pionLog) Errorf(format string, args ...any) { p.logf(format, args...) }

var (
	_ logging.LoggerFactory = pionLog{}
	_ logging.LeveledLogger = pionLog{}
)
