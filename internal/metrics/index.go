package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tern-imap/tern/internal/index"
)

// indexCollector reads index.Stats once per scrape.
type indexCollector struct {
	stats            func() index.Stats
	bytes, mailboxes *prometheus.Desc
	reads, loads     *prometheus.Desc
}

// RegisterIndex adds the mailbox index series, read from stats at each
// scrape: tern_index_memory_bytes, tern_index_mailboxes,
// tern_index_reads_total{result="hit|miss"} (hit rate: hit / (hit +
// miss)) and tern_index_loads_total.
func (m *Metrics) RegisterIndex(stats func() index.Stats) {
	if m == nil || stats == nil {
		return
	}
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "index", n) }
	m.reg.MustRegister(&indexCollector{
		stats:     stats,
		bytes:     prometheus.NewDesc(name("memory_bytes"), "Estimated memory held by the in-memory mailbox indexes.", nil, nil),
		mailboxes: prometheus.NewDesc(name("mailboxes"), "Mailboxes with a loaded in-memory index.", nil, nil),
		reads:     prometheus.NewDesc(name("reads_total"), "Reads through the mailbox index, by whether memory answered them (hit) or the store (miss).", []string{"result"}, nil),
		loads:     prometheus.NewDesc(name("loads_total"), "Whole-mailbox index loads from the store (first use, after eviction).", nil, nil),
	})
}

func (c *indexCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.mailboxes
	ch <- c.reads
	ch <- c.loads
}

func (c *indexCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.mailboxes, prometheus.GaugeValue, float64(st.Mailboxes))
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(st.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(st.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(c.loads, prometheus.CounterValue, float64(st.Loads))
}
