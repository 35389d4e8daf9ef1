package metrics

import (
	"slices"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
)

// NewLease adds the disruption budget's metrics to m, read from view when
// scraped: whether this host holds its group's lease, and how long it has
// waited for it. Call it once, on hosts in a group (rollout.group).
func (m *Metrics) NewLease(group string, view func() *lease.View) {
	held := newFamily("avalanche_lease_held", typeGauge,
		"1 while this host holds its group's disruption-budget lease (activating or rebooting), else 0.", "group")
	waiting := newFamily("avalanche_lease_waiting_seconds", typeGauge,
		"Seconds a deployment has waited for its group's disruption-budget lease; 0 when none waits.", "group")
	held.set.GetOrCreateGauge(held.series(group), func() float64 {
		if v := view(); v != nil && v.Held {
			return 1
		}
		return 0
	})
	waiting.set.GetOrCreateGauge(waiting.series(group), func() float64 {
		if v := view(); v != nil && !v.Held && !v.Since.IsZero() {
			return time.Since(v.Since).Seconds()
		}
		return 0
	})
	m.mu.Lock()
	m.families = append(m.families, held, waiting)
	slices.SortFunc(m.families, func(x, y *family) int { return strings.Compare(x.name, y.name) })
	m.mu.Unlock()
}
