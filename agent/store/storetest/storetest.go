package storetest

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// OpenTest opens an embedded store in t.TempDir() and closes it at cleanup.
func OpenTest(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close test store: %v", err)
		}
	})
	return s
}

// Proxy forwards TCP to target while up; down, it cuts every connection
// and refuses new ones, as a database that is briefly unreachable.
type Proxy struct {
	ln     net.Listener
	target string
	up     atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func NewProxy(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	p.up.Store(true)
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.SetUp(false)
		p.wg.Wait()
	})
	return p
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.up.Load() {
			c.Close()
			continue
		}
		d, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, d)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(d, c); d.Close() })
		p.wg.Go(func() { io.Copy(c, d); c.Close() })
	}
}

// SetUp brings the proxy up, or down: cutting every connection.
func (p *Proxy) SetUp(up bool) {
	p.up.Store(up)
	if !up {
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
	}
}

// Addr is the proxy's address, to connect to instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }
