package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Builder holds the metrics of a host in builder mode (deploy.source
// "builder"): how old the release it runs is, and how much it substituted
// from the fleet cache. Its methods are safe for concurrent use.
type Builder struct {
	substituted *family
	age         *family

	mu    sync.Mutex
	built time.Time // when the running release was published; zero: not from a release
}

// NewBuilder adds the builder-mode metrics to m; call it once, on hosts in
// builder mode.
func (m *Metrics) NewBuilder() *Builder {
	b := &Builder{
		substituted: newFamily("avalanche_substituted_bytes_total", typeCounter,
			"Bytes substituted from the fleet binary cache since the agent started (compressed sizes when the cache reports them)."),
		age: newFamily("avalanche_release_age_seconds", typeGauge,
			"Seconds since the builder published the release the running system came from; absent when it was evaluated on the host."),
	}
	b.substituted.counter() // export a zero, so rate() works from the first scrape
	m.mu.Lock()
	m.families = append(m.families, b.substituted, b.age)
	slices.SortFunc(m.families, func(x, y *family) int { return strings.Compare(x.name, y.name) })
	m.mu.Unlock()
	return b
}

// ObserveSubstituted counts bytes fetched from the fleet cache.
func (b *Builder) ObserveSubstituted(bytes int64) {
	b.substituted.counter().Add(int(bytes))
}

// Update takes the release of the deployed system from a status snapshot.
// The age is computed when scraped; without a release the series is absent.
func (b *Builder) Update(s status.Status) {
	var built time.Time
	if d := s.Deployed; d != nil && d.Release != nil {
		built = d.Release.Built
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.built
	b.built = built
	switch {
	case built.IsZero():
		b.age.reset()
	case was.IsZero():
		b.age.set.GetOrCreateGauge(b.age.series(), b.releaseAge)
	}
}

func (b *Builder) releaseAge() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Since(b.built).Seconds()
}
