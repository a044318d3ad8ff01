package storetest

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/mongo"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
)

// OpenTest opens a store of the default engine (the embedded one) for a
// test, closed at its cleanup.
func OpenTest(t testing.TB) store.Engine { return OpenEmbedded(t) }

// OpenEmbedded opens the embedded engine in a fresh directory and
// closes it at cleanup.
func OpenEmbedded(t testing.TB) store.Engine {
	t.Helper()
	e, err := sqlite.OpenEngine(context.Background(), sqlite.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("close test store: %v", err)
		}
	})
	return e
}

// OpenMongo opens the MongoDB engine against a MongoDB-wire server
// started for the test.
func OpenMongo(t testing.TB) *mongo.Store {
	t.Helper()
	return OpenMongoAt(t, ferrettest.Start(t))
}

// OpenMongoAt opens the MongoDB engine at uri, as the only agent using
// it, and closes it at cleanup.
func OpenMongoAt(t testing.TB, uri string) *mongo.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mongo.Open(ctx, mongo.Config{URI: uri, SoleWriter: true})
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

// OpenMongoBehindProxy opens the MongoDB engine twice on one test
// server: directly, and through a Proxy the test can cut, with timeouts
// short enough that an outage shows at once. Both close at cleanup.
func OpenMongoBehindProxy(t testing.TB) (direct, proxied *mongo.Store, px *Proxy) {
	t.Helper()
	uri := ferrettest.Start(t)
	direct = OpenMongoAt(t, uri)
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	px = NewProxy(t, u.Host)
	proxied = OpenMongoAt(t, "mongodb://"+px.Addr()+
		"/?serverSelectionTimeoutMS=300&connectTimeoutMS=300&heartbeatFrequencyMS=500&retryWrites=false")
	return direct, proxied, px
}
