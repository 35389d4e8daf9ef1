package report_test

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/report"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// BenchmarkAdd is what a deployment event costs the daemon: one atomic,
// fsynced rewrite of the queue file (the sender is not running, so the
// queue holds up to MaxQueued entries, the worst case).
func BenchmarkAdd(b *testing.B) {
	w := newWorld(b, 0)
	r, err := report.New(w.cfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		r.Add(fmt.Sprintf("%040d", i%report.MaxQueued), forge.Status{State: forge.Pending, Context: "avalanche/eagle", Description: "deploying"})
	}
}
