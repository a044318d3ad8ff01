package store

import (
	"errors"
	"net/url"
)

// Sentinel errors; the API maps them to HTTP statuses.
var (
	// ErrNotFound: no such object in the caller's tenant.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object already exists (a unique key is taken).
	ErrConflict = errors.New("already exists")
	// ErrInvalid: the input cannot be stored as given.
	ErrInvalid = errors.New("invalid")
	// ErrUnauthorized: wrong tenant, user name or password.
	ErrUnauthorized = errors.New("wrong credentials")
)

// Page selects one page of a list, as Cumulocity pages: Current counts
// from 1, Size is clamped to 1..MaxPageSize (0 means DefaultPageSize).
type Page struct {
	Size      int
	Current   int
	WithTotal bool // also count all matches (costs a second query)
}

// Paging defaults and limits of the API.
const (
	DefaultPageSize = 5
	MaxPageSize     = 2000
)

// Norm returns p with its size defaulted and bounded and its page at least 1.
func (p Page) Norm() Page {
	if p.Size <= 0 {
		p.Size = DefaultPageSize
	}
	p.Size = min(p.Size, MaxPageSize)
	p.Current = max(p.Current, 1)
	return p
}

// Skip is the number of items before p's page.
func (p Page) Skip() int64 { return int64(p.Current-1) * int64(p.Size) }

// TotalPages converts a total count into Cumulocity's statistics.totalPages.
func TotalPages(total int64, size int) int64 {
	size = Page{Size: size}.Norm().Size
	return (total + int64(size) - 1) / int64(size)
}

// RedactURI returns a database URI without its credentials, for logs,
// errors and messages.
func RedactURI(uri string) string { return redactURI(uri) }

func redactURI(uri string) string {
	// Credentials must not reach logs or error messages.
	if u, err := url.Parse(uri); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return uri
}
