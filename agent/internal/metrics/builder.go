package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Builder holds the metrics of a host in builder mode (deploy.source
// "builder"): how old the release it runs is, and how much it substituted
// from the fleet cache. Its methods are safe for concurrent use.
type Builder struct {
	substituted prometheus.Counter
	age         *releaseAge
}

// NewBuilder registers the builder-mode metrics in m's registry; call it
// once, on hosts in builder mode.
func (m *Metrics) NewBuilder() *Builder {
	b := &Builder{
		substituted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "substituted_bytes_total",
			Help: "Bytes substituted from the fleet binary cache since the agent started (compressed sizes when the cache reports them).",
		}),
		age: &releaseAge{desc: prometheus.NewDesc(namespace+"_release_age_seconds",
			"Seconds since the builder published the release the running system came from; absent when it was evaluated on the host.", nil, nil)},
	}
	m.reg.MustRegister(b.substituted, b.age)
	return b
}

// ObserveSubstituted counts bytes fetched from the fleet cache.
func (b *Builder) ObserveSubstituted(bytes int64) {
	b.substituted.Add(float64(bytes))
}

// Update takes the release of the deployed system from a status snapshot.
func (b *Builder) Update(s status.Status) {
	var built time.Time
	if d := s.Deployed; d != nil && d.Release != nil {
		built = d.Release.Built
	}
	b.age.mu.Lock()
	b.age.built = built
	b.age.mu.Unlock()
}

// releaseAge exports the age of the running release at scrape time, and
// nothing when the running system does not come from a release.
type releaseAge struct {
	desc  *prometheus.Desc
	mu    sync.Mutex
	built time.Time
}

func (a *releaseAge) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

func (a *releaseAge) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	built := a.built
	a.mu.Unlock()
	if built.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, time.Since(built).Seconds())
}
