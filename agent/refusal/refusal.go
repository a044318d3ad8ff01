// Package refusal counts what the agent refuses because a limit was
// reached (a full peer table, a body over its size, a document too deep),
// or because a request came without the credentials it needs (an unknown
// endpoint, a PSK identity nobody holds), and logs each cause at most
// once per interval, with the number refused since the last line: a flood
// must cost a counter increment, not a log line per datagram.
package refusal

import (
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultInterval is how often one cause may be logged.
const DefaultInterval = time.Minute

// Log counts refusals by cause. Causes are a fixed set chosen by the code
// (never built from input), so the number of counters stays bounded. A nil
// *Log counts nothing, which keeps tests and tools that do not care simple.
type Log struct {
	logger   *slog.Logger // component=limits
	denials  *slog.Logger // component=access
	interval time.Duration

	mu     sync.Mutex
	causes map[string]*cause
}

type cause struct {
	total    atomic.Uint64
	mu       sync.Mutex
	logged   time.Time
	unlogged uint64 // refusals since the last line
}

// New returns a Log writing to logger at most once per interval and cause
// (DefaultInterval when interval is 0).
func New(logger *slog.Logger, interval time.Duration) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Log{logger: logger.With("component", "limits"), denials: logger.With("component", "access"), interval: interval, causes: map[string]*cause{}}
}

func (l *Log) get(name string) *cause {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.causes[name]
	if !ok {
		c = &cause{}
		l.causes[name] = c
	}
	return c
}

// Refuse counts one refusal for cause and logs it, with attrs and the
// limit's setting, unless cause was logged less than an interval ago.
// setting names the flag an operator changes to move the limit.
func (l *Log) Refuse(name, setting string, attrs ...any) {
	if n, ok := l.note(name); ok {
		args := append([]any{"cause", name, "setting", setting, "refused_since_last_log", n}, attrs...)
		l.logger.Warn("input refused by a limit", args...)
	}
}

// Deny counts one request refused for want of credentials or rights, and
// logs it like Refuse. No setting moves it: the request was not allowed,
// whatever the load. The answer on the wire does not say the cause (it
// would tell who exists); this count and line do.
func (l *Log) Deny(name string, attrs ...any) {
	if n, ok := l.note(name); ok {
		args := append([]any{"cause", name, "refused_since_last_log", n}, attrs...)
		l.denials.Warn("request refused", args...)
	}
}

// note counts one refusal for cause; ok says it is time to log, with n
// refusals since the last line.
func (l *Log) note(name string) (n uint64, ok bool) {
	if l == nil {
		return 0, false
	}
	c := l.get(name)
	c.total.Add(1)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unlogged++
	if !c.logged.IsZero() && now.Sub(c.logged) < l.interval {
		return 0, false
	}
	n = c.unlogged
	c.unlogged = 0
	c.logged = now
	return n, true
}

// Count returns how many times cause was refused.
func (l *Log) Count(name string) uint64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	c, ok := l.causes[name]
	l.mu.Unlock()
	if !ok {
		return 0
	}
	return c.total.Load()
}

// Counts returns every cause seen with its total, sorted by cause.
func (l *Log) Counts() []Count {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	out := make([]Count, 0, len(l.causes))
	for name, c := range l.causes {
		out = append(out, Count{Cause: name, Total: c.total.Load()})
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Cause < out[j].Cause })
	return out
}

// Count is one cause's total.
type Count struct {
	Cause string
	Total uint64
}

var desc = prometheus.NewDesc("lwm2m_agent_refused_total",
	"Input refused because a limit was reached or credentials were missing, by cause (see the security section of the README).",
	[]string{"cause"}, nil)

// Collector exposes the counts as lwm2m_agent_refused_total{cause}.
func (l *Log) Collector() prometheus.Collector { return collector{l} }

type collector struct{ l *Log }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- desc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, n := range c.l.Counts() {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n.Total), n.Cause)
	}
}
