package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// stateKeyFile holds the generated key sealing DTLS session states, in
// the data directory.
const stateKeyFile = "dtls-state.key"

// dtlsSessions is the keeping of DTLS sessions the configuration asks
// for: in st, sealed with the configured key, else with one generated
// once in the data directory (without either, in memory only).
func dtlsSessions(cfg config.Config, st store.Engine, log *slog.Logger) (psk.SessionConfig, error) {
	sc := psk.SessionConfig{ParkAfter: cfg.DTLSParkAfter, ParkedMax: cfg.DTLSParkedMax}
	key, err := stateKey(cfg)
	if err != nil {
		return sc, err
	}
	if key == nil {
		log.Warn("DTLS sessions kept in memory only: no dtls-state-key and no data directory")
		return sc, nil
	}
	sc.Store, sc.Key = st, key
	sc.TenantOf = func(ctx context.Context, identity string) (string, error) {
		tenant, _, err := st.DeviceByPSKIdentity(ctx, store.PSKServer, identity)
		return tenant, err
	}
	return sc, nil
}

func stateKey(cfg config.Config) ([]byte, error) {
	if cfg.DTLSStateKey != "" {
		key, err := hex.DecodeString(strings.TrimSpace(cfg.DTLSStateKey))
		if err != nil || len(key) != psk.StateKeySize {
			return nil, fmt.Errorf("dtls-state-key: want %d hex digits", 2*psk.StateKeySize)
		}
		return key, nil
	}
	if cfg.DataDir == "" {
		return nil, nil
	}
	path := filepath.Join(cfg.DataDir, stateKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != psk.StateKeySize {
			return nil, fmt.Errorf("dtls state key %s: not %d hex digits", path, 2*psk.StateKeySize)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dtls state key: %w", err)
	}
	key := make([]byte, psk.StateKeySize)
	_, _ = rand.Read(key)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("dtls state key: %w", err)
	}
	// O_EXCL: of two agents starting on one directory, one key wins
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return stateKey(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("dtls state key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("dtls state key %s: %w", path, err)
	}
	return key, nil
}
