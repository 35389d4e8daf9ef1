package fleet

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
)

// WriteRollout writes, under the table, the rollout of commit wave by wave
// (docs/rollouts.md): for each host whether it deployed the commit, soaks
// it, waits at its gate or is held because an earlier host stopped the
// rollout, and who stopped it. Hosts say their own gate's decision; a
// later wave's decision also says how it sees the earlier waves. It writes
// nothing when no host has a rollout gate.
func WriteRollout(w io.Writer, rows []Row, commit string) {
	decisions := rolloutDecisions(rows, commit)
	if len(decisions) == 0 {
		return
	}
	waves, states := map[string]int{}, map[string]string{}
	for _, d := range decisions { // oldest first: the newest view wins
		for _, h := range d.Hosts {
			waves[h.Name] = h.Wave
			states[h.Name] = h.State
		}
	}
	for _, r := range rows {
		if r.Rollout != nil {
			waves[r.Host] = r.Rollout.Wave
		}
		if s := ownState(r, commit); s != "" {
			states[r.Host] = s
		}
	}
	byWave := map[int][]string{}
	for _, r := range rows {
		wave, ok := waves[r.Host]
		if !ok {
			wave = -1
		}
		byWave[wave] = append(byWave[wave], r.Host+" "+cmp.Or(states[r.Host], "-"))
	}
	fmt.Fprintf(w, "\nrollout of %s\n", short(commit))
	for _, wave := range slices.Sorted(maps.Keys(byWave)) {
		label := fmt.Sprintf("wave %d", wave)
		if wave < 0 {
			label = "no wave"
		}
		fmt.Fprintf(w, "  %-8s %s\n", label, strings.Join(byWave[wave], ", "))
	}
	for _, d := range decisions {
		if d.Verdict == rollout.Stopped || d.Verdict == rollout.Paused {
			fmt.Fprintf(w, "  %s by %s: %s\n", d.Verdict, d.By, shorten(d.Reason, 200))
			return
		}
	}
}

// rolloutDecisions are the hosts' gate decisions about commit, oldest
// first.
func rolloutDecisions(rows []Row, commit string) []rollout.Decision {
	var ds []rollout.Decision
	for _, r := range rows {
		if r.Rollout != nil && r.Rollout.Commit == commit {
			ds = append(ds, *r.Rollout)
		}
	}
	slices.SortFunc(ds, func(a, b rollout.Decision) int { return a.Asked.Compare(b.Asked) })
	return ds
}

// ownState is what a host says of itself about commit, "" when nothing.
func ownState(r Row, commit string) string {
	switch {
	case !r.Reachable:
		return "unreachable"
	case r.Commit == commit:
		return "deployed"
	case slices.Contains(r.Refused, commit):
		return "failed"
	case r.Rollout != nil && r.Rollout.Commit == commit && r.Rollout.Verdict != rollout.Open:
		return "held (" + string(r.Rollout.Verdict) + ")"
	case r.Rollout != nil && r.Rollout.Commit == commit:
		return "deploying"
	}
	return ""
}

// rolloutCommit is the commit whose rollout to show: the tip of main when
// known, else the commit most gates decide about.
func rolloutCommit(rows []Row, main string) string {
	if main != "" {
		return main
	}
	count := map[string]int{}
	best := ""
	for _, r := range rows {
		if r.Rollout == nil {
			continue
		}
		c := r.Rollout.Commit
		count[c]++
		if count[c] > count[best] {
			best = c
		}
	}
	return best
}
