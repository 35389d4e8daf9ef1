package cli

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
	"github.com/avalanche-fleet/avalanche/agent/internal/metrics"
	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// metricNamesFile is what the cluster's alert rules and dashboard may name
// (kubernetes/check/observability checks them against it).
const metricNamesFile = "../../../kubernetes/check/observability/agent-metrics.txt"

var updateMetricNames = flag.Bool("update-metric-names", false, "rewrite "+metricNamesFile+" from the live /metrics")

// TestMetricNames: the list of metric families the alert rules and the
// fleet dashboard may use is the one a real agent exposes after a
// deployment, read from its /metrics text (names, types and label names).
func TestMetricNames(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("JOURNAL_STREAM", "")
	up := nixtest.NewRepo(t, "main")
	up.WriteFlake(t, nixtest.FlakeOptions{Name: "fleet", Marker: "one"}, "first")
	srv := gittest.StartHTTPServer(t, up.Bare, "git-token-value")
	h := startNetHost(t, t.TempDir(), up, srv.URL)
	got := append(scrapeFamilies(t, "http://"+h.addr+"/metrics"), builderFamilies(t)...)
	got = append(got, rolloutFamilies(t)...)
	got = append(got, leaseFamilies(t)...)
	slices.Sort(got)
	text := "# The agent's metric families (name, type, label names) as a deployed agent's /metrics\n" +
		"# shows them (avalanche_release_age_seconds and avalanche_substituted_bytes_total: builder mode only;\n" +
		"# avalanche_rollout_held_seconds: hosts with a rollout gate only; avalanche_lease_*: hosts in a\n" +
		"# disruption group only);\n" +
		"# the cluster's alert rules and dashboard may name only these.\n" +
		"# Written by: go test ./agent/internal/cli -run TestMetricNames -update-metric-names\n" +
		strings.Join(got, "\n") + "\n"
	if *updateMetricNames {
		if err := os.WriteFile(metricNamesFile, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(metricNamesFile)
	if err != nil {
		t.Fatalf("%v (write it with -update-metric-names)", err)
	}
	if diff := cmp.Diff(string(want), text); diff != "" {
		t.Errorf("%s is not what /metrics exposes (-file +live); rewrite it with -update-metric-names, then "+
			"`cd kubernetes/check && go test ./observability` shows which rules or panels need the change:\n%s", metricNamesFile, diff)
	}
}

// builderFamilies are the families only hosts in builder mode register,
// read from the metrics package's handler once each has a value.
func builderFamilies(t *testing.T) []string {
	m := metrics.New("test")
	b := m.NewBuilder()
	b.ObserveSubstituted(1024)
	b.Update(status.Status{Deployed: &state.Deployment{Release: &state.Release{Built: time.Now()}}})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	var out []string
	for _, f := range scrapeFamilies(t, srv.URL) {
		if name := strings.Fields(f)[0]; name == "avalanche_release_age_seconds" || name == "avalanche_substituted_bytes_total" {
			out = append(out, f)
		}
	}
	if len(out) != 2 {
		t.Fatalf("builder-mode families = %q; want avalanche_release_age_seconds and avalanche_substituted_bytes_total", out)
	}
	return out
}

// rolloutFamilies are the families only a host with a rollout gate has.
func rolloutFamilies(t *testing.T) []string {
	m := metrics.New("test")
	m.NewRollout().Update(status.Status{Rollout: &rollout.Decision{Verdict: rollout.Waiting, HeldSince: time.Now()}})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	var out []string
	for _, f := range scrapeFamilies(t, srv.URL) {
		if strings.HasPrefix(f, "avalanche_rollout_") {
			out = append(out, f)
		}
	}
	if len(out) != 1 {
		t.Fatalf("rollout gate families = %q; want avalanche_rollout_held_seconds", out)
	}
	return out
}

// leaseFamilies are the families only a host in a disruption group has.
func leaseFamilies(t *testing.T) []string {
	m := metrics.New("test")
	m.NewLease("k3s-server", func() *lease.View { return &lease.View{Held: true} })
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	var out []string
	for _, f := range scrapeFamilies(t, srv.URL) {
		if strings.HasPrefix(f, "avalanche_lease_") {
			out = append(out, f)
		}
	}
	if len(out) != 2 {
		t.Fatalf("lease families = %q; want avalanche_lease_held and avalanche_lease_waiting_seconds", out)
	}
	return out
}

// scrapeFamilies reads url's exposition with metricFamilies.
func scrapeFamilies(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fams, err := metricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// metricFamilies reads the Prometheus text format and returns one line per
// avalanche_ family: "name type label,label", sorted.
func metricFamilies(r io.Reader) ([]string, error) {
	types := map[string]string{}
	labels := map[string][]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, names, err := sampleLabels(line)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !slices.Contains(labels[name], n) {
				labels[name] = append(labels[name], n)
			}
		}
	}
	var out []string
	for name, typ := range types {
		if !strings.HasPrefix(name, "avalanche_") {
			continue // go_ and process_ come from the client library
		}
		l := labels[name]
		slices.Sort(l)
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", name, typ, strings.Join(l, ","))))
	}
	slices.Sort(out)
	return out, sc.Err()
}

// sampleLabels parses `name{a="x",b="y\"z"} value` into name and [a b].
func sampleLabels(line string) (string, []string, error) {
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", nil, fmt.Errorf("sample line %q: no value", line)
	}
	name, rest := line[:i], line[i:]
	var names []string
	if !strings.HasPrefix(rest, "{") {
		return name, nil, nil
	}
	rest = rest[1:]
	for !strings.HasPrefix(rest, "}") {
		eq := strings.Index(rest, `="`)
		if eq < 0 {
			return "", nil, fmt.Errorf("sample line %q: bad label", line)
		}
		names = append(names, strings.TrimPrefix(rest[:eq], ","))
		rest = rest[eq+2:]
		for j := 0; ; j++ {
			if j >= len(rest) {
				return "", nil, fmt.Errorf("sample line %q: unterminated label value", line)
			}
			if rest[j] == '\\' {
				j++
				continue
			}
			if rest[j] == '"' {
				rest = strings.TrimPrefix(rest[j+1:], ",")
				break
			}
		}
	}
	return name, names, nil
}

func TestMetricFamilies(t *testing.T) {
	text := `# HELP avalanche_x An x.
# TYPE avalanche_x gauge
avalanche_x{commit="a\"b}c",store_path="/nix/store/x"} 1
avalanche_x{phase="build"} 2
# TYPE avalanche_y counter
avalanche_y 3
# TYPE go_goroutines gauge
go_goroutines 7
`
	got, err := metricFamilies(strings.NewReader(text))
	want := []string{"avalanche_x gauge commit,phase,store_path", "avalanche_y counter"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("metricFamilies = %q, %v; want %q", got, err, want)
	}
	if _, err := metricFamilies(strings.NewReader("avalanche_x{commit=\"open 1\n")); err == nil {
		t.Errorf("metricFamilies(unterminated label value) = nil error; want one")
	}
}
