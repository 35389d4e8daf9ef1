package cli

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	fleetpkg "github.com/avalanche-fleet/avalanche/agent/internal/fleet"
	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// rolloutSoak is the soak time of the test fleet.
const rolloutSoak = 2 * time.Second

// rolloutWaves is the test fleet: two canaries, then two waves.
var rolloutWaves = map[string]int{"canary-a": 0, "canary-b": 0, "wave1-a": 1, "wave1-b": 1, "wave2-a": 2}

// rolloutGroup is the test fleet's one disruption group: with a budget of
// 1, no two of its hosts activate at once, waves or not.
const rolloutGroup = "fleet"

// startRolloutHost runs an agent wired by NewDaemon, as `avalanche-agent
// run` wires it, with its own state, profile and system links, in its wave
// and in the group rolloutGroup, whose lease lives on commit anchor.
func startRolloutHost(t testing.TB, dir, name, gitURL, forgeURL, anchor string, waves map[string]int) *client.Client {
	t.Helper()
	dir, c := reportingHostConfig(t, dir, name, gitURL, forgeURL, map[string]any{
		"wave": waves[name], "waves": waves, "soak": rolloutSoak.String(),
		"group": rolloutGroup, "budgets": map[string]int{rolloutGroup: 1}, "lease": map[string]any{"anchor": anchor, "ttl": "30s"}})
	cfg, _ := runHostDaemon(t, dir, c)
	return &client.Client{Socket: cfg.SocketPath()}
}

// reportingHostConfig makes the directory of host name under dir, with
// its git and forge tokens, and returns it with the host's config: the
// test fleet's flake, reporting to the forge at forgeURL, with rollout as
// its rollout section.
func reportingHostConfig(t testing.TB, dir, name, gitURL, forgeURL string, rollout map[string]any) (string, map[string]any) {
	t.Helper()
	dir = filepath.Join(dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "git-token", "git-token-value\n")
	writeFile(t, dir, "forge-token", "forge-token-value\n")
	return dir, map[string]any{
		"version": 1, "hostname": name, "flakeOutput": "fleet", "pollInterval": "1s",
		"repository": map[string]any{"url": gitURL, "tokenFile": filepath.Join(dir, "git-token"), "allowInsecureHTTP": true},
		"stateDir":   filepath.Join(dir, "state"), "runtimeDir": filepath.Join(dir, "run"),
		"deploy": map[string]any{"profile": filepath.Join(dir, "profile", "system"), "currentSystem": filepath.Join(dir, "current"),
			"bootedSystem": filepath.Join(dir, "booted"), "systemdRun": false, "nixArgs": nixtest.Args()},
		"report": map[string]any{"forge": map[string]any{"url": forgeURL, "tokenFile": filepath.Join(dir, "forge-token"),
			"repository": "fleet/avalanche"}},
		"rollout": rollout,
	}
}

// rolloutFleet is the agents of the test fleet, by name.
type rolloutFleet map[string]*client.Client

func (f rolloutFleet) status(t *testing.T, name string) status.Status {
	t.Helper()
	s, err := f[name].Status(context.Background())
	if err != nil {
		t.Fatalf("status of %s: %v", name, err)
	}
	return s
}

// rows are the fleet's rows as `avalanche-agent fleet` makes them from
// each host's status.
func (f rolloutFleet) rows(t *testing.T) []fleetpkg.Row {
	var rows []fleetpkg.Row
	for _, name := range slices.Sorted(maps.Keys(f)) {
		s := f.status(t, name)
		r := fleetpkg.Row{Host: name, Reachable: true, State: s.State, Rollout: s.Rollout}
		if s.Deployed != nil {
			r.Commit = s.Deployed.Commit
		}
		for _, b := range s.Refused {
			r.Refused = append(r.Refused, b.Commit)
		}
		rows = append(rows, r)
	}
	return rows
}

// deployed reports whether name runs commit; false while its daemon
// starts.
func (f rolloutFleet) deployed(t testing.TB, name, commit string) bool {
	s, err := f[name].Status(context.Background())
	return err == nil && s.Deployed != nil && s.Deployed.Commit == commit
}

// TestRolloutWaves: five real agents (own state, config and system links)
// against one git server and a fake Forgejo. A good commit goes canaries →
// wave 1 → wave 2, each wave starting only after the earlier ones soaked,
// and with a disruption budget of 1 no two activations ever overlap (read
// from the activations' own log, with their timestamps);
// a commit that fails to activate stops after the canaries, no later host
// even starts it, and status names the host that stopped it; a newer
// good commit then rolls out again.
func TestRolloutWaves(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("JOURNAL_STREAM", "")
	dir := t.TempDir()
	up := nixtest.NewRepo(t, "main")
	flake := func(o nixtest.FlakeOptions, msg string) string {
		o.Name = "fleet"
		return up.WriteFlake(t, o, msg)
	}
	activations := filepath.Join(dir, "activations.log")
	c1 := flake(nixtest.FlakeOptions{Marker: "one", Activate: timedActivation(activations)}, "first")
	git := gittest.StartHTTPServer(t, up.Bare, "git-token-value")
	fake := forgetest.Start(t, "fleet/avalanche", up.Bare, "forge-token-value")
	fleet := rolloutFleet{}
	for name := range rolloutWaves {
		fleet[name] = startRolloutHost(t, dir, name, git.URL, fake.URL, c1, rolloutWaves)
	}
	waitRollout(t, fleet, fake, c1)
	checkOrder(t, fake.Received(), c1)
	checkNoOverlap(t, activations, len(rolloutWaves))

	// A commit that fails to activate: the canaries roll it back, and
	// the later waves never start it.
	c2 := flake(nixtest.FlakeOptions{Marker: "two", ActivationExit: 1, Activate: timedActivation(activations)}, "fails to activate")
	waitFor(t, 2*time.Minute, func() bool {
		for _, name := range []string{"wave1-a", "wave2-a"} {
			r := fleet.status(t, name).Rollout
			if r == nil || r.Commit != c2 || r.Verdict != rollout.Stopped {
				return false
			}
		}
		return true
	})
	// Both canaries try the bad commit; one failure is enough to stop the
	// gate, so wait for the other's verdict before reading the view.
	waitFor(t, 2*time.Minute, func() bool {
		failed := 0
		for _, r := range fake.Received() {
			if r.SHA == c2 && rolloutWaves[strings.TrimPrefix(r.Status.Context, "avalanche/")] == 0 && r.Status.State == forge.Failure {
				failed++
			}
		}
		return failed >= 2
	})
	time.Sleep(2 * rolloutSoak) // time enough for a wrongly opened gate to start
	s := fleet.status(t, "wave2-a")
	if by := s.Rollout.By; !strings.HasPrefix(by, "canary-") || !strings.Contains(s.Rollout.Reason, "rolled back") {
		t.Errorf("wave2-a's gate: stopped by %q: %s; want a canary that rolled back", by, s.Rollout.Reason)
	}
	for _, r := range fake.Received() {
		if host := strings.TrimPrefix(r.Status.Context, "avalanche/"); r.SHA == c2 && rolloutWaves[host] > 0 {
			t.Errorf("%s (wave %d) reported %s on the bad commit: %+v; want nothing, its gate is closed", host, rolloutWaves[host], r.Status.State, r.Status)
		}
	}
	var view strings.Builder
	fleetpkg.WriteRollout(&view, fleet.rows(t), c2)
	for _, want := range []string{"rollout of " + c2[:12], "wave 0   canary-a failed, canary-b failed", "wave 2   wave2-a held (stopped)", "stopped by canary-"} {
		if !strings.Contains(view.String(), want) {
			t.Errorf("avalanche-agent fleet's rollout view:\n%s\nwant a line with %q", view.String(), want)
		}
	}
	t.Logf("avalanche-agent fleet, bad commit:\n%s", view.String())
	for _, name := range []string{"wave1-a", "wave1-b", "wave2-a"} {
		if !fleet.deployed(t, name, c1) {
			t.Errorf("%s left %s: %+v", name, c1[:8], fleet.status(t, name).Deployed)
		}
	}

	// A newer good commit starts a new rollout, which an operator pauses
	// from one host: the canaries deploy it, the later waves hold it past
	// the soak until the operator resumes it.
	c3 := flake(nixtest.FlakeOptions{Marker: "three", Activate: timedActivation(activations)}, "fixed")
	cfg := filepath.Join(dir, "wave2-a", "config.json")
	if out, errOut, err := run(t, "rollout", "--config", cfg, "--reason", "watching", "pause", c3); err != nil {
		t.Fatalf("rollout pause = %v: %s%s", err, out, errOut)
	}
	waitFor(t, time.Minute, func() bool { return fleet.deployed(t, "canary-a", c3) && fleet.deployed(t, "canary-b", c3) })
	waitFor(t, time.Minute, func() bool { r := fleet.status(t, "wave2-a").Rollout; return r != nil && r.Commit == c3 })
	heldDir := filepath.Join(dir, "wave2-a", "state") // c3 fetched: what follows are held polls
	before := fileStamps(t, heldDir)
	time.Sleep(2 * rolloutSoak)
	if diff := cmp.Diff(before, fileStamps(t, heldDir)); diff != "" {
		t.Errorf("wave2-a's state directory changed while its gate held %s (-before +after):\n%s", c3[:8], diff)
	}
	for _, name := range []string{"wave1-a", "wave1-b", "wave2-a"} {
		if r := fleet.status(t, name).Rollout; fleet.deployed(t, name, c3) || r == nil || r.Verdict != rollout.Paused {
			t.Errorf("%s with %s paused: deployed %v, gate %+v; want held, paused", name, c3[:8], fleet.deployed(t, name, c3), r)
		}
	}
	if out, errOut, err := run(t, "rollout", "--config", cfg, "resume", c3); err != nil {
		t.Fatalf("rollout resume = %v: %s%s", err, out, errOut)
	}
	waitRollout(t, fleet, fake, c3)
	checkOrder(t, fake.Received(), c3)
	checkNoOverlap(t, activations, 2*len(rolloutWaves)+2) // c1, c3 and the canaries' c2
}

// timedActivation is an activation script that logs its begin and end
// with their times and its process id, taking a second in between: long
// enough for two hosts that activate together to overlap.
func timedActivation(log string) string {
	return `echo "begin $(date +%s.%N) $$" >> ` + log + `; sleep 1; echo "end $(date +%s.%N) $$" >> ` + log
}

// checkNoOverlap reads the activations' log and fails when two of them
// ran at once, or when fewer than want ran.
func checkNoOverlap(t *testing.T, log string, want int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ begin, end float64 }
	spans := map[string]*span{}
	var order []string
	for line := range strings.Lines(string(b)) {
		var what, pid string
		var at float64
		if _, err := fmt.Sscan(line, &what, &at, &pid); err != nil {
			t.Fatalf("activation log line %q: %v", line, err)
		}
		if spans[pid] == nil {
			spans[pid] = &span{}
			order = append(order, pid)
		}
		if what == "begin" {
			spans[pid].begin = at
		} else {
			spans[pid].end = at
		}
	}
	if len(spans) < want {
		t.Errorf("%d activations logged; want at least %d", len(spans), want)
	}
	var lines []string
	for i, a := range order {
		lines = append(lines, fmt.Sprintf("%.3f-%.3f", spans[a].begin, spans[a].end))
		for _, b := range order[i+1:] {
			if spans[a].begin < spans[b].end && spans[b].begin < spans[a].end {
				t.Errorf("activations %d and %d overlapped: %.3f-%.3f and %.3f-%.3f (budget 1)", i, slices.Index(order, b),
					spans[a].begin, spans[a].end, spans[b].begin, spans[b].end)
			}
		}
	}
	t.Logf("activations (begin-end, unix seconds), none overlapping: %s", strings.Join(lines, " "))
}

// waitRollout waits until every host deployed commit and the forge has
// every host's success status for it.
func waitRollout(t *testing.T, fleet rolloutFleet, fake *forgetest.Server, commit string) {
	t.Helper()
	waitFor(t, 2*time.Minute, func() bool {
		ok := map[string]bool{}
		for _, r := range fake.Received() {
			if r.SHA == commit {
				ok[r.Status.Context] = r.Status.State == forge.Success
			}
		}
		for name := range fleet {
			if !fleet.deployed(t, name, commit) || !ok["avalanche/"+name] {
				return false
			}
		}
		return true
	})
}

// checkOrder checks, from the forge's own record, that no host of wave N
// started commit (its pending status) before every host of the earlier
// waves had reported it deployed at least the soak time before.
func checkOrder(t *testing.T, received []forgetest.Received, commit string) {
	t.Helper()
	started, done := map[string]time.Time{}, map[string]time.Time{}
	for _, r := range received {
		host := strings.TrimPrefix(r.Status.Context, "avalanche/")
		switch {
		case r.SHA != commit:
		case r.Status.State == forge.Pending && started[host].IsZero():
			started[host] = r.Time
		case r.Status.State == forge.Success:
			done[host] = r.Time
		}
	}
	var order []string
	for host, wave := range rolloutWaves {
		if started[host].IsZero() || done[host].IsZero() {
			t.Errorf("%s: started %v, deployed %v; want both in the forge", host, started[host], done[host])
			continue
		}
		for earlier, w := range rolloutWaves {
			// The forge keeps whole seconds, as Forgejo does.
			if w < wave && started[host].Before(done[earlier].Add(rolloutSoak).Truncate(time.Second)) {
				t.Errorf("%s (wave %d) started %s at %s, before %s (wave %d) deployed it (%s) and soaked %v",
					host, wave, commit[:8], started[host].Format("15:04:05.000"), earlier, w, done[earlier].Format("15:04:05.000"), rolloutSoak)
			}
		}
		order = append(order, fmt.Sprintf("%s@%s", host, started[host].Format("05.000")))
	}
	slices.Sort(order)
	t.Logf("rollout of %s started: %v", commit[:8], order)
}

// fileStamps is every file under dir with its size and modification time.
func fileStamps(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		files[p] = fmt.Sprintf("%d %s", fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
