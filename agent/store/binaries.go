package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// BinaryChunkSize is how many bytes of a binary one chunk document holds:
// GridFS's 255 KiB, well below MongoDB's 16 MiB document limit, so that
// reading or writing a binary never holds more than one chunk in flight.
const BinaryChunkSize = 255 << 10

// ErrTooLarge: the input is larger than the limit it was given. The API
// answers 413.
var ErrTooLarge = errors.New("too large")

// Binary is a stored file (firmware, a configuration, a certificate): the
// members of its managed object. Its bytes live in chunk documents of
// BinaryChunkSize each, read and written one at a time.
type Binary struct {
	ID           string
	Name         string
	ContentType  string
	Length       int64
	CreationTime time.Time
	LastUpdated  time.Time
	Owner        string
	// Fragments are the other members of the upload's object part.
	Fragments map[string]any
}

// ChunkReader reads a binary of Length bytes in Chunks chunks, numbered
// from 0, fetching each with Fetch when the bytes before it are read:
// one chunk in memory at a time. An engine's Fetch answers ErrNotFound
// for a chunk that is gone (the binary was deleted while read).
type ChunkReader struct {
	Chunks, Length int64
	Fetch          func(n int64) ([]byte, error)
	next           int64 // the next chunk to fetch
	read           int64 // bytes returned
	cur            []byte
}

func (c *ChunkReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.next >= c.Chunks || c.read >= c.Length {
			return 0, io.EOF
		}
		data, err := c.Fetch(c.next)
		if err != nil {
			return 0, fmt.Errorf("read chunk %d: %w", c.next, err)
		}
		c.next++
		c.cur = data
	}
	k := copy(p, c.cur)
	c.cur = c.cur[k:]
	c.read += int64(k)
	return k, nil
}

// Close ends the reading: Read answers io.EOF from then on.
func (c *ChunkReader) Close() error { c.cur = nil; c.next = c.Chunks; return nil }

// ReadWhole is every engine's ReadBinary over its OpenBinary: the bytes
// of the tenant's binary id, if it holds at most max bytes (ErrTooLarge
// otherwise, before anything is read).
func ReadWhole(ctx context.Context, b Binaries, tenant, id string, max int64) (Binary, []byte, error) {
	bin, rc, err := b.OpenBinary(ctx, tenant, id)
	if err != nil {
		return Binary{}, nil, err
	}
	defer rc.Close()
	if bin.Length > max {
		return Binary{}, nil, fmt.Errorf("binary %s: %d bytes, more than %d: %w", id, bin.Length, max, ErrTooLarge)
	}
	data := make([]byte, bin.Length)
	if _, err := io.ReadFull(rc, data); err != nil {
		return Binary{}, nil, fmt.Errorf("binary %s: %w", id, err)
	}
	return bin, data, nil
}
