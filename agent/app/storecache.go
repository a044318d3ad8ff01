package app

import (
	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	storecache "github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
)

// storeCacheConfig sizes the store cache. Its answers expire only with
// MongoDB, which other agents may write: the embedded store has no
// writer but this agent, whose every change reaches the cache.
func storeCacheConfig(cfg config.Config) storecache.Config {
	c := storecache.Config{Size: cfg.StoreCacheSize, TTL: cfg.StoreCacheTTL}
	if cfg.MongoURI == "" {
		c.TTL = 0
	}
	return c
}
