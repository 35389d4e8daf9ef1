// Package rollout decides whether this host may deploy a main commit yet:
// a host of wave N waits until every host of the earlier waves shows the
// commit deployed, confirmed and healthy for the soak time, read from the
// forge commit statuses the agents already send (context avalanche/<host>,
// package report). An operator steers one commit's rollout with the status
// avalanche/rollout on it (pause, resume, skip). See docs/rollouts.md.
package rollout

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// ControlContext is the commit status context an operator sets to pause,
// resume or skip the gate for one commit, for the whole fleet.
const ControlContext = "avalanche/rollout"

// The words a control status's description starts with.
const (
	WordPause  = "paused"
	WordResume = "resumed"
	WordSkip   = "skip"
)

// Verdict is what the gate says about one commit.
type Verdict string

// The verdicts. Only Open lets the deployment start; the others end the
// pass waiting, with no verdict on the commit.
const (
	Open    Verdict = "open"
	Waiting Verdict = "waiting"
	Stopped Verdict = "stopped"
	Paused  Verdict = "paused"
)

// The states of one earlier host for the commit.
const (
	HostHealthy = "healthy" // deployed, confirmed and soaked
	HostSoaking = "soaking" // deployed and confirmed, soak not over
	HostWaiting = "waiting" // no status yet, or deploying
	HostTrouble = "trouble" // an error without verdict: it retries
	HostStopped = "stopped" // failed or rolled back: a verdict
)

// Host is one earlier host as the gate sees it.
type Host struct {
	Name  string `json:"name"`
	Wave  int    `json:"wave"`
	State string `json:"state"`
	// Since is when the forge recorded the host's last status of the
	// commit; zero when it has none.
	Since time.Time `json:"since,omitzero"`
	// SoakEnds is when a soaking host becomes healthy.
	SoakEnds    time.Time `json:"soakEnds,omitzero"`
	Description string    `json:"description,omitempty"`
}

// Decision is the gate's answer for one commit.
type Decision struct {
	Commit  string  `json:"commit"`
	Wave    int     `json:"wave"`
	Verdict Verdict `json:"verdict"`
	// Skipped is set when an operator opened the gate for this commit.
	Skipped bool `json:"skipped,omitempty"`
	// By names the host that stopped the rollout, or the operator
	// status that paused or skipped it.
	By string `json:"by,omitempty"`
	// Reason says why, in one line, for status and the journal.
	Reason string `json:"reason"`
	// Hosts are the earlier waves' hosts, by wave then name.
	Hosts []Host `json:"hosts,omitempty"`
	// Asked is when the forge was last read for this decision.
	Asked time.Time `json:"asked,omitzero"`
	// HeldSince is when the gate first held this commit (since the agent
	// started); zero once it is open.
	HeldSince time.Time `json:"heldSince,omitzero"`
}

// Decide judges commit for a host placed by r, from the latest statuses
// on the commit at time now.
func Decide(commit string, r config.Rollout, statuses []forge.CommitStatus, now time.Time) Decision {
	d := Decision{Commit: commit, Wave: r.Wave}
	byContext := map[string]forge.CommitStatus{}
	for _, s := range statuses {
		byContext[s.Context] = s
	}
	for _, name := range r.Earlier() {
		d.Hosts = append(d.Hosts, hostState(name, r.Waves[name], byContext, r.Soak.D(), now))
	}
	slices.SortStableFunc(d.Hosts, func(a, b Host) int { return cmp.Compare(a.Wave, b.Wave) })
	control, hasControl := byContext[ControlContext]
	word := ""
	if hasControl {
		word, _, _ = strings.Cut(strings.TrimSpace(control.Description), " ")
	}
	switch {
	case word == WordSkip:
		d.Verdict, d.Skipped, d.By = Open, true, ControlContext
		d.Reason = "an operator skipped the gate for this commit: " + control.Description
	case stopped(&d):
	case word == WordPause:
		d.Verdict, d.By = Paused, ControlContext
		d.Reason = "an operator paused this commit's rollout: " + control.Description
	default:
		waitOrOpen(&d)
	}
	return d
}

func hostState(name string, wave int, byContext map[string]forge.CommitStatus, soak time.Duration, now time.Time) Host {
	h := Host{Name: name, Wave: wave, State: HostWaiting}
	s, ok := byContext["avalanche/"+name]
	if !ok {
		return h
	}
	h.Since, h.Description = s.Updated, s.Description
	if h.Since.IsZero() {
		h.Since = s.Created
	}
	switch s.State {
	case forge.Success:
		h.State, h.SoakEnds = HostHealthy, h.Since.Add(soak)
		if now.Before(h.SoakEnds) {
			h.State = HostSoaking
		}
	case forge.Failure:
		h.State = HostStopped
	case forge.Error:
		h.State = HostTrouble
	}
	return h
}

// stopped sets the verdict Stopped when an earlier host failed the commit.
func stopped(d *Decision) bool {
	for _, h := range d.Hosts {
		if h.State == HostStopped {
			d.Verdict, d.By = Stopped, h.Name
			d.Reason = fmt.Sprintf("%s (wave %d) failed this commit: %s", h.Name, h.Wave, h.Description)
			return true
		}
	}
	return false
}

func waitOrOpen(d *Decision) {
	var soaking, waiting, trouble []string
	for _, h := range d.Hosts {
		switch h.State {
		case HostSoaking:
			soaking = append(soaking, h.Name)
		case HostWaiting:
			waiting = append(waiting, h.Name)
		case HostTrouble:
			trouble = append(trouble, h.Name+" ("+h.Description+")")
		}
	}
	var parts []string
	if len(waiting) > 0 {
		parts = append(parts, "not yet deployed on "+strings.Join(waiting, ", "))
	}
	if len(trouble) > 0 {
		parts = append(parts, "retrying on "+strings.Join(trouble, ", "))
	}
	if len(soaking) > 0 {
		parts = append(parts, "soaking on "+strings.Join(soaking, ", "))
	}
	if len(parts) == 0 {
		d.Verdict = Open
		d.Reason = fmt.Sprintf("every host of the waves before %d is healthy", d.Wave)
		return
	}
	d.Verdict = Waiting
	d.Reason = "waiting for the earlier waves: " + strings.Join(parts, "; ")
}

// NextChange is when a decision made from the same statuses could change
// by time alone (the first soak to end), zero when never.
func (d Decision) NextChange() time.Time {
	var next time.Time
	for _, h := range d.Hosts {
		if h.State == HostSoaking && (next.IsZero() || h.SoakEnds.Before(next)) {
			next = h.SoakEnds
		}
	}
	return next
}
