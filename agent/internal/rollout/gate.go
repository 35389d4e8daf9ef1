package rollout

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// Reader returns the latest status of each context on a commit;
// (*forge.Client).Latest is one.
type Reader func(ctx context.Context, commit string) ([]forge.CommitStatus, error)

// Gate decides for one host, keeping the forge's last answer in memory:
// it reads the forge when a new commit waits, then at most once per
// Interval while the commit is not open, and never once it is open. It
// never writes anything. Set the fields before use; its methods are safe
// for concurrent use.
type Gate struct {
	Rollout config.Rollout
	Read    Reader
	// Interval bounds how often the forge is read for the same commit
	// (the poll interval).
	Interval time.Duration
	Now      func() time.Time

	mu       sync.Mutex
	commit   string
	statuses []forge.CommitStatus
	asked    time.Time
	last     *Decision
}

// Check returns the decision for commit, and whether it differs from the
// previous one (a new commit, verdict or reason: worth a journal line).
// An error reading the forge is returned with a Waiting decision: no
// verdict on the commit, the next pass asks again.
func (g *Gate) Check(ctx context.Context, commit string) (Decision, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.Now()
	switch {
	case len(g.Rollout.Waves) == 0:
		g.last = nil // no rollout at all: nothing to show
		return Decision{Commit: commit, Verdict: Open, Reason: "no rollout waves"}, false, nil
	case !g.Rollout.Gated():
		return g.keep(Decision{Commit: commit, Verdict: Open, Reason: "wave 0 is never held"}, now)
	}
	if g.last != nil && g.commit == commit && g.last.Verdict == Open {
		return *g.last, false, nil
	}
	if g.commit != commit || now.Sub(g.asked) >= g.Interval {
		statuses, err := g.Read(ctx, commit)
		if err != nil {
			d := Decision{Commit: commit, Wave: g.Rollout.Wave, Verdict: Waiting, Asked: now,
				Reason: "cannot read the earlier waves' statuses: " + err.Error()}
			if g.commit != commit {
				g.statuses = nil
			}
			g.commit, g.asked = commit, now
			d, changed, _ := g.keep(d, now)
			return d, changed, fmt.Errorf("reading the rollout statuses of %s: %w", commit, err)
		}
		g.commit, g.statuses, g.asked = commit, statuses, now
	}
	d := Decide(commit, g.Rollout, g.statuses, now)
	d.Asked = g.asked
	return g.keep(d, now)
}

// Configure replaces the host's place in the rollout (a reloaded config)
// and forgets the forge's last answer.
func (g *Gate) Configure(r config.Rollout) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.Rollout, g.commit, g.statuses, g.last = r, "", nil, nil
}

// keep remembers d, made at now; g.mu held.
func (g *Gate) keep(d Decision, now time.Time) (Decision, bool, error) {
	changed := g.last == nil || g.last.Commit != d.Commit || g.last.Verdict != d.Verdict || g.last.Reason != d.Reason
	if d.Verdict != Open {
		d.HeldSince = now
		if g.last != nil && g.last.Commit == d.Commit && !g.last.HeldSince.IsZero() {
			d.HeldSince = g.last.HeldSince
		}
	}
	g.last = &d
	return d, changed, nil
}

// Last returns the last decision, nil before the first.
func (g *Gate) Last() *Decision {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		return nil
	}
	d := *g.last
	return &d
}
