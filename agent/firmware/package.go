package firmware

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Package is a package's bytes, read at any offset (block-wise
// transfers ask for any block).
type Package interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// pkgKey names a binary of a tenant.
type pkgKey struct{ tenant, binary string }

// chunkKey names one stored chunk of a binary.
type chunkKey struct {
	pkgKey
	n int64
}

// binaryPkg is an opened binary: its metadata and the way to fetch its
// chunks. Its bytes are in the packages' shared chunk cache, not here.
type binaryPkg struct {
	key    pkgKey
	bin    store.Binary
	chunks int64
	fetch  func(n int64) ([]byte, error)
	etag   []byte
}

// packages opens binaries and caches their chunks: a block of a few
// hundred bytes is read from a chunk of store.BinaryChunkSize, which the
// next blocks, of this device or of another pulling the same package,
// read again. At most maxChunks chunks are held, and maxOpen binaries'
// metadata, so that memory stays bounded however many devices pull.
type packages struct {
	st        store.Binaries
	life      context.Context // reads outlive the request that started them
	maxChunks int
	maxOpen   int

	mu       sync.Mutex
	open     map[pkgKey]*binaryPkg
	order    []pkgKey // of open, oldest first
	chunks   map[chunkKey]*list.Element
	lru      *list.List // of *chunkEntry, most recent first
	inflight map[chunkKey]*fetchCall
}

type chunkEntry struct {
	key  chunkKey
	data []byte
}

// fetchCall is a chunk being read from the store: the callers wanting
// the same chunk meanwhile wait for it rather than read it again.
type fetchCall struct {
	done chan struct{}
	data []byte
	err  error
}

func newPackages(st store.Binaries, life context.Context, maxChunks, maxOpen int) *packages {
	return &packages{st: st, life: life, maxChunks: maxChunks, maxOpen: maxOpen,
		open: map[pkgKey]*binaryPkg{}, chunks: map[chunkKey]*list.Element{}, lru: list.New(), inflight: map[chunkKey]*fetchCall{}}
}

// get returns the tenant's binary, opened.
func (p *packages) get(ctx context.Context, tenant, id string) (*binaryPkg, error) {
	k := pkgKey{tenant, id}
	p.mu.Lock()
	b := p.open[k]
	p.mu.Unlock()
	if b != nil {
		return b, nil
	}
	// The reader's Fetch reads with the context it was opened with: the
	// packages' own, since the chunks serve later requests too.
	bin, rc, err := p.st.OpenBinary(p.life, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("binary %s: %w", id, err)
	}
	cr, ok := rc.(*store.ChunkReader)
	if !ok {
		_ = rc.Close()
		return nil, fmt.Errorf("binary %s: the store cannot read it at an offset", id)
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d/%d", tenant, id, bin.Length, bin.LastUpdated.UnixNano()))
	b = &binaryPkg{key: k, bin: bin, chunks: cr.Chunks, fetch: cr.Fetch, etag: sum[:8]}
	p.mu.Lock()
	defer p.mu.Unlock()
	if have := p.open[k]; have != nil {
		return have, nil
	}
	if len(p.order) >= p.maxOpen {
		delete(p.open, p.order[0])
		p.order = p.order[1:]
	}
	p.open[k] = b
	p.order = append(p.order, k)
	return b, nil
}

// forget drops what is cached of a binary (deleted, or a copy removed).
func (p *packages) forget(tenant, id string) {
	k := pkgKey{tenant, id}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.open, k)
	for i, o := range p.order {
		if o == k {
			p.order = append(p.order[:i], p.order[i+1:]...)
			break
		}
	}
	for e := p.lru.Front(); e != nil; {
		next := e.Next()
		if ce := e.Value.(*chunkEntry); ce.key.pkgKey == k {
			p.lru.Remove(e)
			delete(p.chunks, ce.key)
		}
		e = next
	}
}

// chunk returns chunk n of b, from the cache or the store.
func (p *packages) chunk(ctx context.Context, b *binaryPkg, n int64) ([]byte, error) {
	k := chunkKey{b.key, n}
	p.mu.Lock()
	if e, ok := p.chunks[k]; ok {
		p.lru.MoveToFront(e)
		data := e.Value.(*chunkEntry).data
		p.mu.Unlock()
		return data, nil
	}
	c, waiting := p.inflight[k]
	if !waiting {
		c = &fetchCall{done: make(chan struct{})}
		p.inflight[k] = c
	}
	p.mu.Unlock()
	if !waiting {
		c.data, c.err = b.fetch(n)
		p.mu.Lock()
		delete(p.inflight, k)
		if c.err == nil {
			p.chunks[k] = p.lru.PushFront(&chunkEntry{k, c.data})
			for p.lru.Len() > p.maxChunks {
				old := p.lru.Back()
				p.lru.Remove(old)
				delete(p.chunks, old.Value.(*chunkEntry).key)
			}
		}
		p.mu.Unlock()
		close(c.done)
	}
	select {
	case <-c.done:
		return c.data, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readAt reads len(buf) bytes of b at off, or up to its end (io.EOF).
func (p *packages) readAt(ctx context.Context, b *binaryPkg, buf []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for n < len(buf) {
		at := off + int64(n)
		if at >= b.bin.Length {
			return n, io.EOF
		}
		data, err := p.chunk(ctx, b, at/store.BinaryChunkSize)
		if err != nil {
			return n, fmt.Errorf("binary %s at %d: %w", b.key.binary, at, err)
		}
		in := int(at % store.BinaryChunkSize)
		if in >= len(data) {
			return n, fmt.Errorf("binary %s at %d: chunk of %d bytes is short", b.key.binary, at, len(data))
		}
		n += copy(buf[n:], data[in:])
	}
	return n, nil
}

// handle is a Package over the packages' cache.
type handle struct {
	p   *packages
	b   *binaryPkg
	ctx context.Context
}

func (h *handle) ReadAt(buf []byte, off int64) (int, error) { return h.p.readAt(h.ctx, h.b, buf, off) }
func (h *handle) Size() int64                               { return h.b.bin.Length }
func (h *handle) Close() error                              { return nil }

var _ Package = (*handle)(nil)
