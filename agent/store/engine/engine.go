// Package engine opens the store the configuration names: the embedded
// engine in the data directory by default, MongoDB when a URI is given.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/mongo"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
)

// Config names the store.
type Config struct {
	// MongoURI selects the MongoDB engine; empty selects the embedded one.
	MongoURI string
	// DataDir holds the embedded engine's file (DataDir/store/agent.db).
	DataDir string
	// SyncNormal trades the embedded engine's durability on power loss
	// for commit latency (see sqlite.Config.SyncNormal).
	SyncNormal bool
	// Existing refuses to create an embedded store that is not there:
	// a source of a copy found empty would copy nothing, and say so
	// only by its silence.
	Existing bool
	Logger   *slog.Logger
}

// Names of the engines, as logged and reported.
const (
	Embedded = "embedded"
	MongoDB  = "mongodb"
)

// Open opens the store cfg names and returns it with its engine's name.
func Open(ctx context.Context, cfg Config) (store.Engine, string, error) {
	if cfg.MongoURI != "" {
		s, err := mongo.Open(ctx, mongo.Config{URI: cfg.MongoURI, Logger: cfg.Logger})
		if err != nil {
			return nil, "", err
		}
		return s, MongoDB, nil
	}
	if cfg.DataDir == "" {
		return nil, "", fmt.Errorf("store: neither a MongoDB URI nor a data directory")
	}
	if cfg.Existing {
		if err := sqlite.CheckOldFormat(ctx, cfg.DataDir); err != nil {
			return nil, "", err
		}
		if _, err := os.Stat(sqlite.FilePath(cfg.DataDir)); errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("no embedded store in %s (%s does not exist)", cfg.DataDir, sqlite.FilePath(cfg.DataDir))
		}
	}
	e, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: cfg.DataDir, SyncNormal: cfg.SyncNormal, Logger: cfg.Logger})
	if err != nil {
		return nil, "", err
	}
	return e, Embedded, nil
}
