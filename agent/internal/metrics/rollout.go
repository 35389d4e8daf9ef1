package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Rollout holds the metrics of a host with a rollout gate (rollout.wave
// above 0): how long its gate has held main's commit, and why. Its methods
// are safe for concurrent use.
type Rollout struct {
	held *family

	mu      sync.Mutex
	verdict string    // of the series exported, "" when none
	since   time.Time // when the gate first held the commit
}

// NewRollout adds the rollout gate's metrics to m; call it once, on hosts
// with a gate.
func (m *Metrics) NewRollout() *Rollout {
	r := &Rollout{held: newFamily("avalanche_rollout_held_seconds", typeGauge,
		"Seconds the rollout gate has held main's commit, by verdict (waiting, stopped, paused); absent while the gate is open.", "verdict")}
	m.mu.Lock()
	m.families = append(m.families, r.held)
	slices.SortFunc(m.families, func(x, y *family) int { return strings.Compare(x.name, y.name) })
	m.mu.Unlock()
	return r
}

// Update takes the gate's decision from a status snapshot. The time held
// is computed when scraped.
func (r *Rollout) Update(s status.Status) {
	verdict, since := "", time.Time{}
	if d := s.Rollout; d != nil && d.Verdict != rollout.Open {
		verdict, since = string(d.Verdict), d.HeldSince
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.since = since
	if verdict == r.verdict {
		return
	}
	if r.verdict != "" {
		r.held.remove(r.verdict)
	}
	r.verdict = verdict
	if verdict != "" {
		r.held.set.GetOrCreateGauge(r.held.series(verdict), r.heldFor)
	}
}

func (r *Rollout) heldFor() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Since(r.since).Seconds()
}
