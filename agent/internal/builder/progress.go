package builder

import (
	"maps"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// Phases of one host's work on the builder, as Progress reports them.
const (
	PhaseEvaluating = "evaluating"
	PhaseBuilding   = "building"
	PhaseCopying    = "copying"
	// PhaseUnchanged: same derivation as in the previous release, nothing to do.
	PhaseUnchanged = "unchanged"
	PhaseDone      = "done"
	// PhaseFailed: the commit does not evaluate or build for this host.
	PhaseFailed = "failed"
	// PhaseWaiting: trouble that is not the commit's (network, cache, Nix
	// daemon); Release must be called again.
	PhaseWaiting = "waiting"
)

// Progress is what the builder is doing, for status and fleet views; it
// is the wire type status.Builder, so status carries it unchanged.
type Progress = status.Builder

// HostProgress is one host's state on the builder.
type HostProgress = status.BuilderHost

// Progress returns a copy of the builder's progress.
func (b *Builder) Progress() Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.progress
	p.Hosts = maps.Clone(p.Hosts)
	return p
}

// start begins (or resumes) work on commit.
func (b *Builder) start(commit string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.progress.Commit != commit {
		b.progress = Progress{Commit: commit, Hosts: map[string]HostProgress{}}
		b.results = map[string]release.Host{}
	}
	b.progress.Started, b.progress.Finished = b.now(), time.Time{}
	b.progress.Release, b.progress.Error = "", ""
}

// finish records the end of an attempt.
func (b *Builder) finish(id string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.progress.Finished = b.now()
	b.progress.Release = id
	if err != nil {
		b.progress.Error = err.Error()
	}
}

// report sets one host's phase.
func (b *Builder) report(name, phase string, h release.Host, msg string) {
	hp := HostProgress{Phase: phase, Since: b.now(), OutPath: h.OutPath, Error: msg}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.progress.Hosts[name] = hp
}

// record keeps a host's finished entry for the release.
func (b *Builder) record(name string, h release.Host) {
	phase := PhaseDone
	if h.Error != "" {
		phase = PhaseFailed
	}
	b.mu.Lock()
	if prev := b.progress.Hosts[name]; prev.Phase == PhaseUnchanged {
		phase = PhaseUnchanged
	}
	b.results[name] = h
	b.mu.Unlock()
	b.report(name, phase, h, h.Error)
}

// finished reports whether name is done for the current commit.
func (b *Builder) finished(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.results[name]
	return ok
}
