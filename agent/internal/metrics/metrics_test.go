package metrics

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// scrape fetches the exposition over real HTTP and parses it.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	return parse(t, fetchExposition(t, m))
}

// parse reads an exposition with the Prometheus text parser.
func parse(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing exposition: %v\n%s", err, body)
	}
	return fams
}

// series flattens the avalanche_* families to "name{k=v,...}" -> value.
func series(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "avalanche_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestNewExposesBuildInfoAndRuntime(t *testing.T) {
	fams := scrape(t, New("1.2.3"))
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", "avalanche_up"} {
		if fams[name] == nil {
			t.Errorf("exposition lacks %s", name)
		}
	}
	got := series(fams)
	want := map[string]float64{
		"avalanche_build_info{goversion=" + runtime.Version() + ",version=1.2.3}": 1,
		"avalanche_up":                              1,
		"avalanche_fetches_total{result=error}":     0,
		"avalanche_fetches_total{result=unchanged}": 0,
		"avalanche_fetches_total{result=updated}":   0,
		"avalanche_reboot_needed":                   0,
		"avalanche_suspended":                       0,
		"avalanche_pending_confirmation":            0,
	}
	addZeros(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series of a new Metrics (-want +got):\n%s", diff)
	}
}

func TestObservePhaseAndFetch(t *testing.T) {
	m := New("dev")
	start := time.Now()
	m.ObservePhase(PhaseFetch, ResultOK, 1500*time.Millisecond)
	m.ObservePhase(PhaseEvaluate, ResultOK, 2*time.Second)
	m.ObservePhase(PhaseBuild, ResultError, 90*time.Second)
	m.ObservePhase(PhaseBuild, ResultSkipped, 0) // keeps the error of the last real build
	m.ObservePhase(PhaseSecrets, ResultSkipped, 0)
	m.ObserveFetch(FetchUpdated)
	m.ObserveFetch(FetchUnchanged)
	m.ObserveFetch(FetchUnchanged)
	got := series(scrape(t, m))
	end := time.Now()

	for key, want := range map[string]float64{
		"avalanche_phase_last_duration_seconds{phase=fetch}":       1.5,
		"avalanche_phase_last_duration_seconds{phase=evaluate}":    2,
		"avalanche_phase_last_duration_seconds{phase=build}":       90,
		"avalanche_phase_last_success{phase=fetch}":                1,
		"avalanche_phase_last_success{phase=evaluate}":             1,
		"avalanche_phase_last_success{phase=build}":                0,
		"avalanche_phase_runs_total{phase=build,result=error}":     1,
		"avalanche_phase_runs_total{phase=build,result=skipped}":   1,
		"avalanche_phase_runs_total{phase=secrets,result=skipped}": 1,
		"avalanche_fetches_total{result=updated}":                  1,
		"avalanche_fetches_total{result=unchanged}":                2,
		"avalanche_fetches_total{result=error}":                    0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v); want %v", key, v, ok, want)
		}
	}
	for _, absent := range []string{
		"avalanche_phase_last_success{phase=secrets}",
		"avalanche_phase_last_duration_seconds{phase=secrets}",
		"avalanche_phase_last_timestamp_seconds{phase=secrets}",
	} {
		if v, ok := got[absent]; ok {
			t.Errorf("%s = %v after a skipped run only; want absent", absent, v)
		}
	}
	ts := got["avalanche_phase_last_timestamp_seconds{phase=build}"]
	if lo, hi := float64(start.Unix()), float64(end.Unix()+1); ts < lo || ts > hi {
		t.Errorf("avalanche_phase_last_timestamp_seconds{phase=build} = %v; want within [%v, %v]", ts, lo, hi)
	}
}

func deployment(commit string, gen int, at time.Time) *state.Deployment {
	return &state.Deployment{
		Commit: commit, Generation: gen, Time: at, Result: "deployed",
		StorePath: "/nix/store/" + commit[:8] + "-nixos-system-eagle",
	}
}

func TestUpdate(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m := New("dev")
	m.Update(status.Status{
		Deployed:     deployment("aaaaaaaaaaaa1111", 41, at),
		RebootNeeded: true,
		Suspended:    true,
		Pending:      &state.Pending{},
		ExitNode:     &status.ExitNode{Advertised: true, Approved: false, Online: true},
	})
	// A second snapshot replaces the deployed series and drops the exit node.
	m.Update(status.Status{Deployed: deployment("bbbbbbbbbbbb2222", 42, at.Add(time.Hour))})
	got := series(scrape(t, m))
	want := map[string]float64{
		"avalanche_deployed_info{commit=bbbbbbbbbbbb2222,generation=42,store_path=/nix/store/bbbbbbbb-nixos-system-eagle}": 1,
		"avalanche_deployed_timestamp_seconds": float64(at.Add(time.Hour).Unix()),
		"avalanche_reboot_needed":              0,
		"avalanche_suspended":                  0,
		"avalanche_pending_confirmation":       0,
		"avalanche_up":                         1,
	}
	checkSubset(t, "after two Updates", want, got)
	for key := range got {
		if strings.Contains(key, "aaaaaaaa") || strings.HasPrefix(key, "avalanche_exit_node") {
			t.Errorf("stale series %s still exported", key)
		}
	}

	m.Update(status.Status{
		Deployed: deployment("bbbbbbbbbbbb2222", 42, at), RebootNeeded: true, Suspended: true,
		Pending: &state.Pending{}, ExitNode: &status.ExitNode{Advertised: true, Online: true},
	})
	checkSubset(t, "after a third Update", map[string]float64{
		"avalanche_reboot_needed":        1,
		"avalanche_suspended":            1,
		"avalanche_pending_confirmation": 1,
		"avalanche_exit_node_advertised": 1,
		"avalanche_exit_node_approved":   0,
		"avalanche_exit_node_online":     1,
	}, series(scrape(t, m)))
}

func checkSubset(t *testing.T, when string, want, got map[string]float64) {
	t.Helper()
	for key, w := range want {
		if v, ok := got[key]; !ok || v != w {
			t.Errorf("%s: %s = %v (present %v); want %v", when, key, v, ok, w)
		}
	}
}

func TestRestoreFromStateFile(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "state.json")
	deployed := deployment("cccccccccccc3333", 7, t0.Add(2*time.Hour))
	before := &state.State{
		FetchedAt: t0.Add(5 * time.Hour),
		Deployed:  deployed,
		Suspended: true,
		Pending:   &state.Pending{Deployment: state.Deployment{Commit: "dddd"}},
		LastError: &state.Failure{Commit: "eeeeeeeeeeee5555", Phase: PhaseBuild, Message: "build failed", Time: t0.Add(4 * time.Hour)},
	}
	before.Record(state.Deployment{Commit: "ffffffffffff0000", Result: "rolled-back", Time: t0})
	before.Record(*deployed)
	before.Record(state.Deployment{Commit: "cccccccccccc3333", Result: "up-to-date", Time: t0.Add(3 * time.Hour)})
	before.Record(state.Deployment{Commit: "eeeeeeeeeeee5555", Result: "failed", Time: t0.Add(4 * time.Hour)})
	if err := state.Save(path, before); err != nil {
		t.Fatal(err)
	}

	// Simulated restart: a fresh process loads the state file.
	loaded, err := state.Load(path)
	if err != nil {
		t.Fatalf("Load(%q) = %v", path, err)
	}
	m := New("dev")
	m.Restore(loaded)
	got := series(scrape(t, m))

	sec := func(d time.Duration) float64 { return float64(t0.Add(d).Unix()) }
	want := map[string]float64{
		"avalanche_deployed_info{commit=cccccccccccc3333,generation=7,store_path=/nix/store/cccccccc-nixos-system-eagle}": 1,
		"avalanche_deployed_timestamp_seconds":                   sec(2 * time.Hour),
		"avalanche_suspended":                                    1,
		"avalanche_pending_confirmation":                         1,
		"avalanche_up":                                           1,
		"avalanche_phase_last_success{phase=fetch}":              1,
		"avalanche_phase_last_timestamp_seconds{phase=fetch}":    sec(5 * time.Hour),
		"avalanche_phase_last_success{phase=evaluate}":           1,
		"avalanche_phase_last_timestamp_seconds{phase=evaluate}": sec(4 * time.Hour),
		"avalanche_phase_last_success{phase=build}":              0,
		"avalanche_phase_last_timestamp_seconds{phase=build}":    sec(4 * time.Hour),
		"avalanche_phase_last_success{phase=secrets}":            1,
		"avalanche_phase_last_timestamp_seconds{phase=secrets}":  sec(2 * time.Hour),
		"avalanche_phase_last_success{phase=activate}":           1,
		"avalanche_phase_last_success{phase=confirm}":            1,
		"avalanche_phase_last_timestamp_seconds{phase=confirm}":  sec(2 * time.Hour),
		"avalanche_reboot_needed":                                0,
		"avalanche_fetches_total{result=error}":                  0,
		"avalanche_fetches_total{result=unchanged}":              0,
		"avalanche_fetches_total{result=updated}":                0,
	}
	want["avalanche_phase_last_timestamp_seconds{phase=activate}"] = sec(2 * time.Hour)
	want[fmt.Sprintf("avalanche_build_info{goversion=%s,version=dev}", runtime.Version())] = 1
	addZeros(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series after Restore (-want +got):\n%s", diff)
	}
}

// addZeros adds the series every Metrics exports from the start: the
// deployment counters at zero and no drift.
func addZeros(want map[string]float64) {
	for _, r := range DeploymentResults {
		want["avalanche_deployments_total{result="+r+"}"] = 0
	}
	want["avalanche_drift"] = 0
}

// TestDriftDeploymentsAndWebhook: drift follows status; ended deployments
// and webhook answers are counted by result and code.
func TestDriftDeploymentsAndWebhook(t *testing.T) {
	m := New("dev")
	m.Update(status.Status{Drift: &state.Drift{Running: "/nix/store/b", Expected: "/nix/store/a"}})
	m.ObserveDeployment("rolled-back")
	m.ObserveDeployment("deployed")
	m.ObserveDeployment("deployed")
	m.ObserveWebhook(401)
	got := series(scrape(t, m))
	for name, want := range map[string]float64{
		"avalanche_drift": 1, "avalanche_deployments_total{result=deployed}": 2,
		"avalanche_deployments_total{result=rolled-back}": 1, "avalanche_webhook_requests_total{code=401}": 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v; want %v", name, got[name], want)
		}
	}
	m.Update(status.Status{})
	if got := series(scrape(t, m))["avalanche_drift"]; got != 0 {
		t.Errorf("avalanche_drift after the drift ended = %v; want 0", got)
	}
}

func TestPhaseOutcomes(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		s    state.State
		want map[string]outcome
	}{
		{name: "empty", want: map[string]outcome{}},
		{
			name: "rolled back without a recorded phase fails confirm",
			s:    state.State{History: []state.Deployment{{Commit: "a", Result: "rolled-back", Time: t0}}},
			want: map[string]outcome{
				"fetch": {true, t0}, "evaluate": {true, t0}, "build": {true, t0},
				"secrets": {true, t0}, "activate": {true, t0}, "confirm": {false, t0},
			},
		},
		{
			name: "failed at verify, phase from the refused commits",
			s: state.State{
				History: []state.Deployment{{Commit: "a", Result: "failed", Time: t0}},
				Bad:     []state.BadCommit{{Commit: "a", Phase: "verify"}},
			},
			want: map[string]outcome{"fetch": {true, t0}, "verify": {false, t0}},
		},
		{
			name: "failed with unknown phase tells nothing",
			s:    state.State{History: []state.Deployment{{Commit: "a", Result: "failed", Time: t0}}},
			want: map[string]outcome{},
		},
		{
			name: "transient fetch error after a deployment",
			s: state.State{
				History:   []state.Deployment{{Commit: "a", Result: "deployed", Time: t0}},
				LastError: &state.Failure{Phase: "fetch", Time: t0.Add(time.Minute), Transient: true},
			},
			want: map[string]outcome{
				"fetch": {false, t0.Add(time.Minute)}, "evaluate": {true, t0}, "build": {true, t0},
				"secrets": {true, t0}, "activate": {true, t0}, "confirm": {true, t0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := phaseOutcomes(&tt.s)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(outcome{})); diff != "" {
				t.Errorf("phaseOutcomes() (-want +got):\n%s", diff)
			}
		})
	}
}
