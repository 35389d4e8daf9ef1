package observability

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"sigs.k8s.io/yaml"

	"github.com/avalanche-fleet/avalanche/kubernetes/check"
)

const repoRoot = "../../.."

func committed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func metrics(t *testing.T) Metrics {
	t.Helper()
	m, err := ReadMetrics(MetricsFile)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGeneratedFilesAreCurrent: the committed scrape targets, rules and
// dashboard are what the inventory and this package give.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := Files(context.Background(), repoRoot)
	if err != nil {
		t.Fatalf("Files = %v", err)
	}
	if stale := Stale(repoRoot, files); len(stale) > 0 {
		t.Errorf("%v differ from what their sources give: run `cd kubernetes/check && go run ./cmd/observability` and commit", stale)
	}
}

// TestScrapeTargetsMatchInventory reads the committed ScrapeConfigs: every
// host of the inventory is a target exactly once, with its labels, at its
// .internal name (the exit node at its tailnet address), on the port
// global.nix makes the agents listen on.
func TestScrapeTargetsMatchInventory(t *testing.T) {
	f, err := ReadFleet(context.Background(), repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]StaticConfig{}
	for _, h := range f.Hosts {
		addr := h.Name + ".internal:" + f.MetricsPort
		network := "lan"
		if h.HasRole("exit-node") {
			addr, network = ExitNodeIPPlaceholder+":"+f.MetricsPort, "tailnet"
		}
		want[h.Name] = StaticConfig{Targets: []string{addr}, Labels: map[string]string{"job": Job, "host": h.Name,
			"role": strings.Join(h.Roles, ","), "arch": h.System, "hardware": h.Hardware, "network": network}}
	}
	got := map[string]StaticConfig{}
	for _, doc := range strings.Split(string(committed(t, ScrapeFile)), "\n---\n") {
		var sc ScrapeConfig
		if err := yaml.UnmarshalStrict([]byte(doc), &sc); err != nil {
			t.Fatalf("decoding %s: %v", ScrapeFile, err)
		}
		for _, s := range sc.Spec.StaticConfigs {
			if _, dup := got[s.Labels["host"]]; dup {
				t.Errorf("host %s is scraped twice", s.Labels["host"])
			}
			got[s.Labels["host"]] = s
		}
	}
	if len(want) < 17 {
		t.Errorf("the inventory has %d hosts; want the whole fleet", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scrape targets vs inventory (-inventory +%s):\n%s", ScrapeFile, diff)
	}
}

// TestRules loads the committed rules the way Prometheus does (rulefmt:
// expressions, durations, templates) and checks every expression against
// the metrics a real agent exports.
func TestRules(t *testing.T) {
	var pr PrometheusRule
	if err := yaml.Unmarshal(committed(t, RulesFile), &pr); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, NewParser(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Errorf("rulefmt: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	var alerts []string
	m, p := metrics(t), NewParser()
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			for _, err := range CheckExpr(p, r.Expr, m) {
				t.Errorf("alert %s: %v", r.Alert, err)
			}
		}
	}
	for _, a := range []string{"AvalancheAgentDown", "AvalancheHostBehind", "AvalancheRolledBack", "AvalancheReleaseLate", "AvalancheDeployFailing", "AvalancheDrift", "AvalancheWebhookFailing"} {
		if !slices.Contains(alerts, a) {
			t.Errorf("alerts %v lack %s", alerts, a)
		}
	}
}

// TestDashboard decodes the committed dashboard with the foundation SDK's
// own types and checks every query like the rules' expressions.
func TestDashboard(t *testing.T) {
	b := committed(t, DashboardFile)
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decoding %s as a Grafana dashboard: %v", DashboardFile, err)
	}
	if d.Uid == nil || *d.Uid != DashboardUID {
		t.Errorf("dashboard uid = %v; want %s", d.Uid, DashboardUID)
	}
	var titles []string
	for _, p := range d.Panels {
		if p.Panel != nil && p.Panel.Title != nil {
			titles = append(titles, *p.Panel.Title)
		}
	}
	for _, want := range []string{"Hosts by deployed commit", "Time since last deployment", "Phase durations", "Failures by phase", "Rollbacks", "Release age (builder mode)"} {
		if !slices.Contains(titles, want) {
			t.Errorf("panels %q lack %q", titles, want)
		}
	}
	queries, err := DashboardQueries(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 15 {
		t.Errorf("found %d queries in the dashboard; want every panel's and the host variable's", len(queries))
	}
	m, p := metrics(t), NewParser()
	for _, q := range queries {
		for _, err := range CheckExpr(p, q, m) {
			t.Error(err)
		}
	}
}

// TestCheckExprCatches: the check fails on what it exists to catch.
func TestCheckExprCatches(t *testing.T) {
	m := Metrics{"avalanche_up": {Type: "gauge"}, "avalanche_phase_runs_total": {Type: "counter", Labels: []string{"phase", "result"}}}
	for _, tc := range []struct{ expr, want string }{
		{`avalanche_drift > 0`, `names metric "avalanche_drift", which the agent does not export`},
		{`{__name__="avalanche_release_age_seconds"}`, `names metric "avalanche_release_age_seconds"`},
		{`avalanche_up{phase="build"}`, `selects avalanche_up by label "phase", which it does not carry`},
		{`sum by (colour) (avalanche_up)`, `groups by label "colour"`},
		{`avalanche_up and on (colour) up`, `matches on label "colour"`},
		{`avalanche_up ==`, `does not parse`},
		{`rate(avalanche_phase_runs_total[5m]`, `does not parse`},
	} {
		err := errors.Join(CheckExpr(NewParser(), tc.expr, m)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckExpr(%q) = %v; want an error containing %q", tc.expr, err, tc.want)
		}
	}
	for _, ok := range []string{`up{job="avalanche-agent", host=~".*"} == 0`, `sum by (host, phase) (increase(avalanche_phase_runs_total{result="error"}[5m]))`} {
		if errs := CheckExpr(NewParser(), ok, m); len(errs) > 0 {
			t.Errorf("CheckExpr(%q) = %v; want none", ok, errs)
		}
	}
}

// TestTargetsNeedAnAddress: a host neither in the .internal zone nor the
// exit node gets no silent default, but an error naming it.
func TestTargetsNeedAnAddress(t *testing.T) {
	zone := filepath.Join(t.TempDir(), "internal.zone")
	os.WriteFile(zone, []byte("$ORIGIN internal.\n$TTL 300\neagle A 10.0.0.3\n"), 0o644)
	z, err := check.ReadZone(zone)
	if err != nil {
		t.Fatal(err)
	}
	f := Fleet{MetricsPort: "9464", Hosts: []Host{{Name: "eagle", Roles: []string{"server"}}, {Name: "vps", Roles: []string{"exit-node"}}}}
	ts, err := Targets(f, z)
	if err != nil || len(ts) != 2 || ts[0].Address != "eagle.internal:9464" || ts[1].Address != "EXIT-NODE-IP:9464" || ts[1].Network != "tailnet" {
		t.Errorf("Targets = %+v, %v; want eagle on the LAN and vps over the tailnet", ts, err)
	}
	f.Hosts = append(f.Hosts, Host{Name: "stray", Roles: []string{"server"}})
	if _, err := Targets(f, z); err == nil || !strings.Contains(err.Error(), "stray: no address in the .internal zone") {
		t.Errorf("Targets with a host outside the zone = %v; want an error naming it", err)
	}
}

// TestReadFleetErrors: agents that serve no metrics, or a listen address
// without a port, are said plainly rather than scraped nowhere.
func TestReadFleetErrors(t *testing.T) {
	for _, tc := range []struct{ global, want string }{
		{`{ ... }: { services.avalanche-agent = { }; }`, "sets no services.avalanche-agent.metricsListen"},
		{`{ ... }: { services.avalanche-agent.metricsListen = "localhost"; }`, `metricsListen "localhost" is not host:port`},
	} {
		root := t.TempDir()
		for name, body := range map[string]string{"nixos/lib/inventory.nix": `{ eagle = { system = "aarch64-linux"; hardware = "rpi4"; roles = [ ]; }; }`,
			"nixos/profiles/global.nix": tc.global} {
			os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
			os.WriteFile(filepath.Join(root, name), []byte(body), 0o644)
		}
		if _, err := ReadFleet(context.Background(), root); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadFleet(global.nix %s) = %v; want an error containing %q", tc.global, err, tc.want)
		}
	}
}
