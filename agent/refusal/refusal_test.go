package refusal

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRefuseLogsOncePerIntervalAndCountsAll(t *testing.T) {
	var buf lockedBuf
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				l.Refuse("coap_peers_full", "--max-peers", "peer", "192.0.2.1:5683")
			}
		}()
	}
	wg.Wait()
	l.Refuse("json_depth", "--max-json-depth")
	if got := l.Count("coap_peers_full"); got != 8000 {
		t.Fatalf("count = %d, want 8000", got)
	}
	if got := strings.Count(buf.String(), "cause=coap_peers_full"); got != 1 {
		t.Fatalf("logged %d lines for one cause in one interval, want 1:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "setting=--max-peers") || !strings.Contains(buf.String(), "cause=json_depth") {
		t.Fatalf("log lacks the setting or the second cause:\n%s", buf.String())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Collector())
	if n, err := testutil.GatherAndCount(reg, "lwm2m_agent_refused_total"); err != nil || n != 2 {
		t.Fatalf("metrics: %d series, %v; want 2", n, err)
	}
}

func TestRefuseLogsAgainAfterIntervalWithNumberSince(t *testing.T) {
	var buf lockedBuf
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Nanosecond)
	l.Refuse("csv_line", "--max-csv-line")
	time.Sleep(time.Millisecond) // past an interval of 1 ns, not a wait for another goroutine
	l.Refuse("csv_line", "--max-csv-line")
	if got := strings.Count(buf.String(), "cause=csv_line"); got != 2 {
		t.Fatalf("logged %d lines over two intervals, want 2:\n%s", got, buf.String())
	}
}

// A denial is counted and logged once per interval like a refusal, under
// its own cause and without a setting.
func TestDenyCountsAndLogsOncePerInterval(t *testing.T) {
	var buf lockedBuf
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for range 100 {
		l.Deny("register_unknown_endpoint", "endpoint", "nobody")
	}
	if got := l.Count("register_unknown_endpoint"); got != 100 {
		t.Fatalf("count = %d, want 100", got)
	}
	out := buf.String()
	if got := strings.Count(out, "cause=register_unknown_endpoint"); got != 1 {
		t.Fatalf("logged %d lines for one cause in one interval, want 1:\n%s", got, out)
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "endpoint=nobody") || strings.Contains(out, "setting=") {
		t.Fatalf("log line is not a warning with the attributes and no setting:\n%s", out)
	}
}

func TestNilLogCountsNothing(t *testing.T) {
	var l *Log
	l.Refuse("x", "--y")
	l.Deny("x")
	if l.Count("x") != 0 || l.Counts() != nil {
		t.Fatal("nil Log counted")
	}
}
