// Package engine opens the store the configuration names: the embedded
// engine in the data directory by default, MongoDB when a URI is given.
package engine

import (
	"context"
	"fmt"
	"log/slog"

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
	Logger     *slog.Logger
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
	e, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: cfg.DataDir, SyncNormal: cfg.SyncNormal, Logger: cfg.Logger})
	if err != nil {
		return nil, "", err
	}
	return e, Embedded, nil
}
