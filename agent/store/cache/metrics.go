package cache

import "github.com/prometheus/client_golang/prometheus"

var (
	hitsDesc = prometheus.NewDesc("lwm2m_agent_store_cache_hits_total",
		"Store lookups answered by the agent's cache, by cache (endpoints, identities, registrations, queues).", []string{"cache"}, nil)
	missesDesc = prometheus.NewDesc("lwm2m_agent_store_cache_misses_total",
		"Store lookups the agent's cache could not answer (absent or expired), by cache.", []string{"cache"}, nil)
	evictionsDesc = prometheus.NewDesc("lwm2m_agent_store_cache_evictions_total",
		"Answers pushed out of the agent's cache to make room, by cache.", []string{"cache"}, nil)
	entriesDesc = prometheus.NewDesc("lwm2m_agent_store_cache_entries",
		"Answers held by the agent's cache, by cache (stale ones included until they are met or pushed out).", []string{"cache"}, nil)
)

// Collector exposes the counters of every cache at scrape time.
func (c *Cache) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Cache }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hitsDesc, missesDesc, evictionsDesc, entriesDesc} {
		ch <- d
	}
}

func (m collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range m.c.Stats() {
		ch <- prometheus.MustNewConstMetric(hitsDesc, prometheus.CounterValue, float64(s.Hits), s.Name)
		ch <- prometheus.MustNewConstMetric(missesDesc, prometheus.CounterValue, float64(s.Misses), s.Name)
		ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(s.Evictions), s.Name)
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(s.Entries), s.Name)
	}
}

// Stats are one cache's counters.
type Stats struct {
	Name                    string
	Hits, Misses, Evictions uint64
	Entries                 int
}

// Stats returns the counters of each cache: endpoints, identities,
// registrations, queues, post operations.
func (c *Cache) Stats() []Stats {
	c.mu.Lock()
	n := []int{c.endpoints.len(), c.identities.len(), c.records.len(), c.queues.len(), c.postOps.len()}
	c.mu.Unlock()
	return []Stats{
		stats(c.endpoints, n[0]), stats(c.identities, n[1]), stats(c.records, n[2]), stats(c.queues, n[3]), stats(c.postOps, n[4]),
	}
}

func stats[K comparable, V any](l *lru[K, V], n int) Stats {
	return Stats{Name: l.name, Hits: l.hits.Load(), Misses: l.misses.Load(), Evictions: l.evictions.Load(), Entries: n}
}
