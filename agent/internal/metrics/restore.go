package metrics

import (
	"slices"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
)

// Deployment results recorded in state.Deployment.Result.
const (
	resultDeployed   = "deployed"
	resultUpToDate   = "up-to-date"
	resultFailed     = "failed"
	resultRolledBack = "rolled-back"
)

// outcome is what the state file tells about the last run of one phase.
type outcome struct {
	ok bool
	at time.Time
}

// Restore sets the gauges from the state file after a restart, so that a
// restart shows what the host runs and how its last passes went instead of
// empty or zero values. Durations are not in the state file and stay absent
// until the phase runs again; counters start from zero as Prometheus expects.
func (m *Metrics) Restore(s *state.State) {
	if s == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := s.Deployed; d != nil {
		m.setDeployed(d.Commit, d.Generation, d.StorePath, d.Time)
	} else {
		m.clearDeployed()
	}
	m.suspended.Set(boolValue(s.Suspended))
	m.pending.Set(boolValue(s.Pending != nil))
	m.drift.Set(boolValue(s.Drift != nil))
	m.up.Set(1)
	for phase, o := range phaseOutcomes(s) {
		m.setPhase(phase, o.ok, o.at)
	}
}

// phaseOutcomes replays the history, oldest first, and then the last error,
// keeping for each phase the newest outcome.
func phaseOutcomes(s *state.State) map[string]outcome {
	out := map[string]outcome{}
	set := func(phase string, ok bool, at time.Time) {
		if prev, seen := out[phase]; !seen || !at.Before(prev.at) {
			out[phase] = outcome{ok: ok, at: at}
		}
	}
	for _, d := range s.History {
		ran, failed := phasesOf(d, s)
		for _, p := range ran {
			set(p, true, d.Time)
		}
		if failed != "" {
			set(failed, false, d.Time)
		}
	}
	if !s.FetchedAt.IsZero() {
		set(PhaseFetch, true, s.FetchedAt)
	}
	if f := s.LastError; f != nil && f.Phase != "" {
		set(f.Phase, false, f.Time)
	}
	return out
}

// phasesOf tells which phases of a recorded deployment succeeded and which
// one failed ("" when none did or it is not known).
func phasesOf(d state.Deployment, s *state.State) (ok []string, failed string) {
	switch d.Result {
	case resultDeployed:
		return Phases, ""
	case resultUpToDate:
		return Phases[:2], ""
	case resultRolledBack:
		if p := failedPhase(d, s); p != "" {
			return before(p), p
		}
		return Phases[:len(Phases)-1], PhaseConfirm
	case resultFailed:
		if p := failedPhase(d, s); p != "" {
			return before(p), p
		}
	}
	return nil, ""
}

// failedPhase finds the phase a deployment failed in: the state keeps it in
// the refused commits and in the last error, not in the history.
func failedPhase(d state.Deployment, s *state.State) string {
	if b := s.IsBad(d.Commit); b != nil && b.Phase != "" {
		return b.Phase
	}
	if f := s.LastError; f != nil && f.Commit == d.Commit {
		return f.Phase
	}
	return ""
}

// before returns the phases that run before phase. A phase outside Phases
// (such as verify) is taken to run right after fetch.
func before(phase string) []string {
	if i := slices.Index(Phases, phase); i >= 0 {
		return Phases[:i]
	}
	return Phases[:1]
}
