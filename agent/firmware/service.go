package firmware

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Store is what the service needs of the store.
type Store interface {
	store.Binaries
	store.Identities
	store.FirmwareGrants
}

// Defaults of Config.
const (
	DefaultMaxSize      = 16 << 20
	DefaultMaxTransfers = 1024
	DefaultStallTimeout = 2 * time.Minute
	DefaultFetchTimeout = 5 * time.Minute
	DefaultCopyTTL      = 30 * time.Minute
	DefaultCacheChunks  = 32 // 8 MiB of store.BinaryChunkSize
	// grantTTL is how long a grant read from the store is trusted: a
	// revocation on another replica takes effect within it.
	grantTTL = 2 * time.Second
	// maxGrantCache bounds the grants held in memory.
	maxGrantCache = 16384
	sweepInterval = time.Minute
	sweepBatch    = 256
	// busyMaxAge is the seconds a refused device waits before it asks
	// again (Max-Age of 5.03, Retry-After of 503).
	busyMaxAge = 5
)

// Config configures a Service. Zero values mean their defaults.
type Config struct {
	Store  Store // required
	Logger *slog.Logger
	// MaxSize bounds a package, an agent binary or an external one.
	MaxSize int64
	// MaxTransfers bounds the transfers served at once, over every
	// scheme; StallTimeout frees the slot of a transfer whose device
	// asked nothing for that long.
	MaxTransfers int
	StallTimeout time.Duration
	// FetchTimeout bounds the fetch of an external package; CopyTTL is
	// how long the copy fetched for Open is kept.
	FetchTimeout time.Duration
	CopyTTL      time.Duration
	// CacheChunks bounds the chunks of store.BinaryChunkSize held in
	// memory for every transfer together.
	CacheChunks int
	// Client fetches external packages (nil: one of its own).
	Client *http.Client
	// The bases of the URIs given to devices for each scheme
	// (scheme://host[:port]), when the device has none of its own
	// (Grant.Base); empty refuses grants of that scheme.
	CoAPBase, CoAPSBase, HTTPBase, HTTPSBase string
}

// Grant is what Service.Grant makes a URI for.
type Grant struct {
	Tenant, DeviceID, Endpoint, OperationID string
	Source                                  Source
	Scheme                                  string    // "coap", "coaps", "http" or "https": how the device will fetch it
	Base                                    string    // the device's fwUpdateURL when set: the scheme://host[:port] base it must use; "" for the agent's default address of that scheme
	Expires                                 time.Time // the operation's deadline
}

// ErrInvalid says a request of the runner cannot be met as asked (a
// source too large, a scheme without a base): the operation fails with
// the error's text.
var ErrInvalid = errors.New("invalid")

// Service serves firmware packages. It is safe for concurrent use.
type Service struct {
	cfg       Config
	log       *slog.Logger
	st        Store
	pkgs      *packages
	transfers *transfers
	metrics   *metrics
	stop      context.CancelFunc

	mu     sync.Mutex
	grants map[string]cachedGrant // by key
	copies map[string]*copyCall   // fetches under way, by copy key
}

type cachedGrant struct {
	g     store.FirmwareGrant
	until time.Time
}

// New returns a service; Run sweeps what expires.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("firmware: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.MaxTransfers == 0 {
		cfg.MaxTransfers = DefaultMaxTransfers
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.CopyTTL == 0 {
		cfg.CopyTTL = DefaultCopyTTL
	}
	if cfg.CacheChunks == 0 {
		cfg.CacheChunks = DefaultCacheChunks
	}
	if cfg.MaxSize < 0 || cfg.MaxTransfers < 0 || cfg.StallTimeout < 0 || cfg.FetchTimeout < 0 || cfg.CopyTTL < 0 || cfg.CacheChunks < 0 {
		return nil, errors.New("firmware: negative limit")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.FetchTimeout}
	}
	for scheme, base := range map[string]string{"coap": cfg.CoAPBase, "coaps": cfg.CoAPSBase, "http": cfg.HTTPBase, "https": cfg.HTTPSBase} {
		if base != "" {
			if err := checkBase(scheme, base); err != nil {
				return nil, fmt.Errorf("firmware: %w", err)
			}
		}
	}
	life, stop := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "firmware"), st: cfg.Store, stop: stop,
		pkgs:      newPackages(cfg.Store, life, cfg.CacheChunks, 256),
		transfers: newTransfers(cfg.MaxTransfers, cfg.StallTimeout),
		grants:    map[string]cachedGrant{}, copies: map[string]*copyCall{}}
	s.metrics = newMetrics(s)
	return s, nil
}

// Run removes expired grants and copies, and frees the slots of stalled
// transfers, until ctx ends; the service's reads end with it.
func (s *Service) Run(ctx context.Context) {
	defer s.stop()
	t := time.NewTicker(min(sweepInterval, s.cfg.StallTimeout))
	defer t.Stop()
	for {
		s.sweep(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep removes what expired before now, a batch at a time.
func (s *Service) sweep(ctx context.Context, now time.Time) {
	s.transfers.expire(now)
	s.mu.Lock()
	for k, c := range s.grants {
		if now.After(c.until) {
			delete(s.grants, k)
		}
	}
	s.mu.Unlock()
	for ctx.Err() == nil {
		gs, err := s.st.ExpiredFirmwareGrants(ctx, now, sweepBatch)
		if err != nil {
			s.log.Warn("sweep firmware grants", "err", err)
			return
		}
		for _, g := range gs {
			deleted, err := s.st.DeleteFirmwareGrant(ctx, g.Key, g.Expires)
			if err != nil {
				s.log.Warn("sweep firmware grants", "err", err)
				return
			}
			if deleted && g.IsCopy() {
				s.pkgs.forget(g.Tenant, g.BinaryID)
				if err := s.st.DeleteBinary(ctx, g.Tenant, g.BinaryID); err != nil && !errors.Is(err, store.ErrNotFound) {
					s.log.Warn("remove copy of an external package", "tenant", g.Tenant, "binary", g.BinaryID, "err", err)
				}
			}
		}
		if len(gs) < sweepBatch {
			return
		}
	}
}

// Grant returns the Package URI to write into /5/0/1 for g: a URI valid
// for g's device and operation only, until Revoke or g.Expires; or an
// external http(s) URL, as is, for a device that pulls over HTTP(S).
func (s *Service) Grant(ctx context.Context, g Grant) (string, error) {
	if g.Tenant == "" || g.DeviceID == "" || g.OperationID == "" {
		return "", fmt.Errorf("firmware grant: %w: tenant, device and operation are required", ErrInvalid)
	}
	scheme := strings.ToLower(g.Scheme)
	switch scheme {
	case "coap", "coaps", "http", "https":
	default:
		return "", fmt.Errorf("firmware grant: %w: scheme %q is not one of coap, coaps, http, https", ErrInvalid, g.Scheme)
	}
	if !g.Expires.After(time.Now()) {
		return "", fmt.Errorf("firmware grant: %w: the operation's deadline has passed", ErrInvalid)
	}
	if g.Source.URL != "" && sameFamily(g.Source.URL, scheme) {
		return g.Source.URL, nil
	}
	base := g.Base
	if base == "" {
		base = s.defaultBase(scheme)
		if base == "" {
			return "", fmt.Errorf("firmware grant: %w: no %s address to give devices (set --firmware-%s-base)", ErrInvalid, strings.ToUpper(scheme), scheme)
		}
	}
	if err := checkBase(scheme, base); err != nil {
		return "", fmt.Errorf("firmware grant of device %s: %w", g.DeviceID, err)
	}
	binID, err := s.resolve(ctx, g.Tenant, g.Source, g.Expires)
	if err != nil {
		return "", err
	}
	token, key := newToken()
	err = s.st.PutFirmwareGrant(ctx, store.FirmwareGrant{Key: key, Tenant: g.Tenant, DeviceID: g.DeviceID, Endpoint: g.Endpoint,
		OperationID: g.OperationID, Scheme: scheme, BinaryID: binID, Expires: g.Expires})
	if err != nil {
		return "", fmt.Errorf("firmware grant of operation %s: %w", g.OperationID, err)
	}
	return strings.TrimRight(base, "/") + "/" + PathPrefix + token, nil
}

// PathPrefix is the path of the packages served, on the LwM2M ports and
// the HTTP port alike, before the token.
const PathPrefix = "fw/"

// Revoke ends the grants of an operation (when it ends, whatever its
// status): their URIs answer 4.04 / 404 from then on, here at once and
// on other replicas within a few seconds.
func (s *Service) Revoke(ctx context.Context, tenant, operationID string) error {
	if _, err := s.st.RevokeFirmwareGrants(ctx, tenant, operationID); err != nil {
		return err
	}
	s.mu.Lock()
	for k, c := range s.grants {
		if c.g.Tenant == tenant && c.g.OperationID == operationID {
			delete(s.grants, k)
		}
	}
	s.mu.Unlock()
	s.transfers.revoke(tenant + "/" + operationID)
	return nil
}

// Open returns the package of src for the PUSH sender: an agent binary,
// or the agent's copy of an external package (fetched once, kept for
// Config.CopyTTL after the last Open).
func (s *Service) Open(ctx context.Context, tenant string, src Source) (Package, error) {
	id, err := s.resolve(ctx, tenant, src, time.Now().Add(s.cfg.CopyTTL))
	if err != nil {
		return nil, err
	}
	b, err := s.pkgs.get(ctx, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("firmware %s: %w", src, err)
	}
	return &handle{p: s.pkgs, b: b, ctx: s.pkgs.life}, nil
}

// resolve returns the binary of src, within the size bound: the agent's
// own, or its copy of an external package kept until at least until.
func (s *Service) resolve(ctx context.Context, tenant string, src Source, until time.Time) (string, error) {
	id := src.BinaryID
	if id == "" {
		if src.URL == "" {
			return "", fmt.Errorf("firmware: %w: no source", ErrInvalid)
		}
		var err error
		if id, err = s.copyOf(ctx, tenant, src.URL, until); err != nil {
			return "", err
		}
	}
	b, err := s.st.GetBinary(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("firmware %s: %w: no such binary", src, ErrInvalid)
	}
	if err != nil {
		return "", fmt.Errorf("firmware %s: %w", src, err)
	}
	if b.Length > s.cfg.MaxSize {
		return "", fmt.Errorf("firmware %s: %w: %d bytes, more than the %d bytes allowed (--firmware-max-size)", src, ErrInvalid, b.Length, s.cfg.MaxSize)
	}
	return id, nil
}

// lookup returns the live grant of a token: from memory when read from
// the store within grantTTL.
func (s *Service) lookup(ctx context.Context, token string) (store.FirmwareGrant, error) {
	key := tokenKey(token)
	now := time.Now()
	s.mu.Lock()
	c, ok := s.grants[key]
	s.mu.Unlock()
	if ok && now.Before(c.until) && now.Before(c.g.Expires) {
		return c.g, nil
	}
	g, err := s.st.FirmwareGrant(ctx, key, now)
	if err != nil {
		return store.FirmwareGrant{}, err
	}
	s.mu.Lock()
	if len(s.grants) >= maxGrantCache {
		clear(s.grants)
	}
	s.grants[key] = cachedGrant{g: g, until: now.Add(grantTTL)}
	s.mu.Unlock()
	return g, nil
}

// SetBases sets the default bases of the URIs of each scheme that
// Config left empty: the agent knows its addresses once it listens.
func (s *Service) SetBases(coap, coaps, http, https string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range []struct {
		cur *string
		v   string
	}{{&s.cfg.CoAPBase, coap}, {&s.cfg.CoAPSBase, coaps}, {&s.cfg.HTTPBase, http}, {&s.cfg.HTTPSBase, https}} {
		if *b.cur == "" {
			*b.cur = b.v
		}
	}
}

// Serves tells whether the service has an address of scheme to give
// devices without one of their own: a grant of that scheme is refused
// otherwise.
func (s *Service) Serves(scheme string) bool {
	return s.defaultBase(strings.ToLower(scheme)) != ""
}

func (s *Service) defaultBase(scheme string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch scheme {
	case "coap":
		return s.cfg.CoAPBase
	case "coaps":
		return s.cfg.CoAPSBase
	case "http":
		return s.cfg.HTTPBase
	}
	return s.cfg.HTTPSBase
}

// newToken returns a URI's secret, 128 random bits, and its key in the
// store.
func newToken() (token, key string) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, tokenKey(token)
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// sameFamily tells an external URL a device of scheme can fetch itself:
// http(s) for HTTP(S) pull, coap(s) for CoAP(S) pull.
func sameFamily(raw, scheme string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	return strings.TrimSuffix(strings.ToLower(u.Scheme), "s") == strings.TrimSuffix(scheme, "s")
}

// checkBase checks a base of URIs: scheme://host[:port][/path], of the
// scheme the device uses, without user information (which would be a
// credential in a URL that lasts).
func checkBase(scheme, base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("%w: base %q is not a URL", ErrInvalid, redact(base))
	}
	if !strings.EqualFold(u.Scheme, scheme) {
		return fmt.Errorf("%w: base %q is not a %s:// URL", ErrInvalid, redact(base), scheme)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: base %q must be %s://host[:port][/path], without user, query or fragment", ErrInvalid, redact(base), scheme)
	}
	return nil
}
