package api

import (
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LoginThrottle settings: after Failures refused logins in a row from one
// source address, or for one tenant/user, further attempts from it (or
// for it) are answered 429 without a password check for a backoff that
// starts at a second and doubles with each further failure, up to
// MaxBackoff. Guessing is slowed to a crawl and a flood of wrong
// passwords no longer spends the CPU that valid requests need.
type LoginThrottle struct {
	Failures   int           // refused logins before the backoff; 0 takes 5, negative turns it off
	MaxBackoff time.Duration // 0 takes 5 minutes
	MaxEntries int           // addresses and users remembered, each; 0 takes 65,536
}

// throttle keeps, per source address and per user, the refused logins in
// a row and until when attempts are refused.
type throttle struct {
	cfg      LoginThrottle
	now      func() time.Time
	log      *slog.Logger
	refused  prometheus.Counter
	mu       sync.Mutex
	addrs    map[string]*failures
	users    map[string]*failures
	lastLog  time.Time
	unlogged int
}

type failures struct {
	n     int
	until time.Time // attempts before then are refused
	last  time.Time
}

// forgetAfter is how long a key without failures in between is kept.
const forgetAfter = time.Hour

func newThrottle(cfg LoginThrottle, log *slog.Logger, refused prometheus.Counter) *throttle {
	if cfg.Failures == 0 {
		cfg.Failures = 5
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 65536
	}
	return &throttle{cfg: cfg, now: time.Now, log: log, refused: refused, addrs: map[string]*failures{}, users: map[string]*failures{}}
}

// wait returns how long attempts from addr or for user are refused; 0
// lets the attempt go on to the password check.
func (t *throttle) wait(addr, user string) time.Duration {
	if t.cfg.Failures < 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var d time.Duration
	for _, f := range []*failures{t.addrs[addr], t.users[user]} {
		if f != nil && f.until.After(now) {
			d = max(d, f.until.Sub(now))
		}
	}
	if d > 0 {
		t.refused.Inc()
		// once a minute, not per attempt: a flood must not flood the log
		t.unlogged++
		if now.Sub(t.lastLog) >= time.Minute {
			t.log.Warn("logins refused by the backoff after repeated wrong credentials", "refused", t.unlogged, "addr", addr, "user", user)
			t.lastLog, t.unlogged = now, 0
		}
	}
	return d
}

// failed records a refused login from addr for user.
func (t *throttle) failed(addr, user string) {
	if t.cfg.Failures < 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.record(t.addrs, addr, now)
	t.record(t.users, user, now)
}

func (t *throttle) record(m map[string]*failures, key string, now time.Time) {
	f := m[key]
	if f == nil {
		if len(m) >= t.cfg.MaxEntries {
			t.prune(m, now)
		}
		f = &failures{}
		m[key] = f
	}
	f.n++
	f.last = now
	if over := f.n - t.cfg.Failures; over >= 0 {
		backoff := time.Duration(math.Min(float64(time.Second)*math.Pow(2, float64(over)), float64(t.cfg.MaxBackoff)))
		f.until = now.Add(backoff)
	}
}

// prune makes room in a full map: first what has expired, then, if the
// map is still full, what failed longest ago.
func (t *throttle) prune(m map[string]*failures, now time.Time) {
	for k, f := range m {
		if f.until.Before(now) && now.Sub(f.last) > forgetAfter {
			delete(m, k)
		}
	}
	for len(m) >= t.cfg.MaxEntries {
		var oldest string
		var at time.Time
		for k, f := range m {
			if oldest == "" || f.last.Before(at) {
				oldest, at = k, f.last
			}
		}
		delete(m, oldest)
	}
}

// succeeded forgets the failures of addr and user.
func (t *throttle) succeeded(addr, user string) {
	if t.cfg.Failures < 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.addrs, addr)
	delete(t.users, user)
}

// sourceAddr is the peer's IP: the address the connection came from, not
// a header a client may set.
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
