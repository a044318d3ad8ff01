package firmware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// copyPrefix starts the keys of copies, apart from the grants' hashes.
const copyPrefix = "copy/"

// copyCall is a fetch under way: the callers wanting the same copy
// meanwhile wait for it.
type copyCall struct {
	done chan struct{}
	id   string
	err  error
}

// copyKey is the key of the tenant's copy of an external URL.
func copyKey(tenant, raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return copyPrefix + tenant + "/" + hex.EncodeToString(sum[:])
}

// copyOf returns the binary holding the tenant's copy of the package at
// raw, fetching it when there is none, and keeps it until at least
// until: once per URL while operations use it, so that a campaign
// fetches a package once, and every replica serves the copy.
func (s *Service) copyOf(ctx context.Context, tenant, raw string, until time.Time) (string, error) {
	key := copyKey(tenant, raw)
	for {
		s.mu.Lock()
		c, waiting := s.copies[key]
		if !waiting {
			c = &copyCall{done: make(chan struct{})}
			s.copies[key] = c
		}
		s.mu.Unlock()
		if waiting {
			select {
			case <-c.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if c.err != nil {
				return "", c.err
			}
			continue // extend it to this caller's deadline
		}
		c.id, c.err = s.ensureCopy(ctx, key, tenant, raw, until)
		s.mu.Lock()
		delete(s.copies, key)
		s.mu.Unlock()
		close(c.done)
		return c.id, c.err
	}
}

func (s *Service) ensureCopy(ctx context.Context, key, tenant, raw string, until time.Time) (string, error) {
	g, err := s.st.FirmwareGrant(ctx, key, time.Now())
	switch {
	case err == nil:
		if _, err := s.st.GetBinary(ctx, tenant, g.BinaryID); err == nil {
			if g.Expires.Before(until) {
				g.Expires = until
				if err := s.st.PutFirmwareGrant(ctx, g); err != nil {
					return "", fmt.Errorf("firmware %s: keep copy: %w", redact(raw), err)
				}
			}
			return g.BinaryID, nil
		}
	case !errors.Is(err, store.ErrNotFound):
		return "", fmt.Errorf("firmware %s: copy: %w", redact(raw), err)
	}
	id, err := s.fetch(ctx, tenant, raw)
	if err != nil {
		return "", err
	}
	err = s.st.PutFirmwareGrant(ctx, store.FirmwareGrant{Key: key, Tenant: tenant, BinaryID: id, URL: redact(raw), Expires: until})
	if err != nil {
		_ = s.st.DeleteBinary(context.WithoutCancel(ctx), tenant, id)
		return "", fmt.Errorf("firmware %s: keep copy: %w", redact(raw), err)
	}
	return id, nil
}

// fetch stores the package at raw as a binary of the tenant, bounded by
// MaxSize and FetchTimeout.
func (s *Service) fetch(ctx context.Context, tenant, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("firmware %s: %w: the agent fetches external packages over HTTP(S) only; give the device a coap(s) URL to pull itself, or upload the package", redact(raw), ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return "", fmt.Errorf("firmware %s: %w", redact(raw), err)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		// the client's error repeats the URL, user information included
		return "", fmt.Errorf("firmware %s: fetch failed: %w", redact(raw), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("firmware %s: fetch answered %s", redact(raw), resp.Status)
	}
	if resp.ContentLength > s.cfg.MaxSize {
		return "", fmt.Errorf("firmware %s: %w: %d bytes, more than the %d bytes allowed (--firmware-max-size)", redact(raw), ErrInvalid, resp.ContentLength, s.cfg.MaxSize)
	}
	name := path.Base(u.Path)
	if name == "." || name == "/" {
		name = "firmware"
	}
	b, err := s.st.CreateBinary(ctx, tenant, store.Binary{Name: name, ContentType: "application/octet-stream",
		Fragments: map[string]any{"lwm2m_FirmwareCopy": map[string]any{"url": redact(raw)}}}, resp.Body, s.cfg.MaxSize)
	if errors.Is(err, store.ErrTooLarge) {
		return "", fmt.Errorf("firmware %s: %w: more than the %d bytes allowed (--firmware-max-size)", redact(raw), ErrInvalid, s.cfg.MaxSize)
	}
	if err != nil {
		return "", fmt.Errorf("firmware %s: store copy: %w", redact(raw), err)
	}
	s.log.Info("fetched external firmware package", "tenant", tenant, "url", redact(raw), "binary", b.ID, "bytes", b.Length)
	return b.ID, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
