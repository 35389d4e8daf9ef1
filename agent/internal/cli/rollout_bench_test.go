package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// benchWaves is a 3-wave fleet of 6 agents.
var benchWaves = map[string]int{"a0": 0, "b0": 0, "a1": 1, "b1": 1, "a2": 2, "b2": 2}

// BenchmarkRolloutPushToLastWave: six real agents (in-process, own state,
// real nix builds of a test flake, pollInterval 1s) in three waves, soak
// shortened to rolloutSoak, one disruption group with a budget of 1 (no
// two activations at once), against one git HTTP server and the fake
// Forgejo. Each iteration pushes a new commit and measures the time from
// the push to the last host's success status, with each wave's.
//
//	go test -run '^$' -bench RolloutPushToLastWave -benchtime 3x ./agent/internal/cli
func BenchmarkRolloutPushToLastWave(b *testing.B) {
	nixtest.Require(b)
	b.Setenv("JOURNAL_STREAM", "")
	dir := b.TempDir()
	up := nixtest.NewRepo(b, "main")
	c0 := up.WriteFlake(b, nixtest.FlakeOptions{Name: "fleet", Marker: "bench-0"}, "first")
	git := gittest.StartHTTPServer(b, up.Bare, "git-token-value")
	fake := forgetest.Start(b, "fleet/avalanche", up.Bare, "forge-token-value")
	fleet := rolloutFleet{}
	for name := range benchWaves {
		fleet[name] = startRolloutHost(b, dir, name, git.URL, fake.URL, c0, benchWaves)
	}
	waitDeployed(b, fake, c0, 5*time.Minute)
	n, sums := 0, map[string]float64{}
	for b.Loop() {
		n++
		pushed := time.Now()
		c := up.WriteFlake(b, nixtest.FlakeOptions{Name: "fleet", Marker: fmt.Sprintf("bench-%d", n)}, "next")
		done := waitDeployed(b, fake, c, 5*time.Minute)
		var last time.Time
		for wave := range 3 {
			var end time.Time
			for host, w := range benchWaves {
				if w == wave && done[host].After(end) {
					end = done[host]
				}
			}
			sums[fmt.Sprintf("wave%d-s", wave)] += end.Sub(pushed).Seconds()
			last = end
		}
		sums["push-to-last-wave-s"] += last.Sub(pushed).Seconds()
		b.Logf("push %d: last wave deployed %.1fs after the push", n, last.Sub(pushed).Seconds())
	}
	for name, sum := range sums { // means over the iterations
		b.ReportMetric(sum/float64(n), name)
	}
}

// waitDeployed waits until every host of benchWaves reported commit
// deployed and returns when the forge recorded each success.
func waitDeployed(b *testing.B, fake *forgetest.Server, commit string, timeout time.Duration) map[string]time.Time {
	done := map[string]time.Time{}
	waitFor(b, timeout, func() bool {
		for _, r := range fake.Received() {
			host := strings.TrimPrefix(r.Status.Context, "avalanche/")
			if _, ok := benchWaves[host]; ok && r.SHA == commit && r.Status.State == forge.Success && done[host].IsZero() {
				done[host] = r.Time
			}
		}
		return len(done) == len(benchWaves)
	})
	return done
}
