package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/builder"

	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/notify"
	"github.com/avalanche-fleet/avalanche/agent/internal/report"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// forgeHost is an agent wired by NewDaemon, as `avalanche-agent run` wires
// it, that reports to a fake Forgejo.
type forgeHost struct {
	cfg  *config.Config
	stop func()
}

func startForgeHost(t *testing.T, dir, gitURL, forgeURL string) *forgeHost {
	t.Helper()
	c := map[string]any{
		"version": 1, "hostname": "eagle", "flakeOutput": "fleet", "pollInterval": "1h",
		"repository": map[string]any{"url": gitURL, "tokenFile": filepath.Join(dir, "git-token"), "allowInsecureHTTP": true},
		"stateDir":   filepath.Join(dir, "state"), "runtimeDir": filepath.Join(dir, "run"),
		"deploy": map[string]any{"profile": filepath.Join(dir, "profile", "system"), "currentSystem": filepath.Join(dir, "current"),
			"bootedSystem": filepath.Join(dir, "booted"), "systemdRun": false, "nixArgs": nixtest.Args()},
		"report": map[string]any{"forge": map[string]any{"url": forgeURL, "tokenFile": filepath.Join(dir, "forge-token"),
			"repository": "fleet/avalanche"}},
	}
	cfg, stop := runHostDaemon(t, dir, c)
	h := &forgeHost{cfg: cfg, stop: stop}
	if _, err := waitPasses(context.Background(), h.client(), 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	return h
}

// runHostDaemon writes c as dir's config.json and runs an agent with it
// in-process, its Nix pointed at the test store; stop (also run at the
// test's end) stops it and may be called more than once.
func runHostDaemon(t testing.TB, dir string, c map[string]any) (cfg *config.Config, stop func()) {
	t.Helper()
	b, _ := json.Marshal(c)
	cfg, err := config.Load(writeFile(t, dir, "config.json", string(b)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDaemon(cfg, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	d.Nix.(*rebuild.Nix).Env = nixtest.Env(t)
	d.Notify = &notify.Notifier{Send: func(string) (bool, error) { return false, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return cfg, stop
}

func (h *forgeHost) client() *client.Client { return &client.Client{Socket: h.cfg.SocketPath()} }

func (h *forgeHost) sync(t *testing.T, want string) {
	t.Helper()
	r, err := h.client().Sync(context.Background(), true, false)
	if err != nil || r.Result != want {
		t.Fatalf("sync = %+v, %v; want %s", r, err, want)
	}
}

func (h *forgeHost) status(t *testing.T) status.Status {
	t.Helper()
	s, err := h.client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestForgeStatuses: a push to the test repository produces, on a fake
// Forgejo, the statuses of a real deployment, a build failure and a
// rollback, in order; 5xx answers are retried; with the forge down the
// host says so in status, and a report still queued when the agent stops
// is sent by the next agent.
func TestForgeStatuses(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("JOURNAL_STREAM", "")
	dir := t.TempDir()
	writeFile(t, dir, "git-token", "git-token-value\n")
	writeFile(t, dir, "forge-token", "forge-token-value\n")
	up := nixtest.NewRepo(t, "main")
	flake := func(o nixtest.FlakeOptions, msg string) string {
		o.Name = "fleet"
		return up.WriteFlake(t, o, msg)
	}
	c1 := flake(nixtest.FlakeOptions{Marker: "one"}, "first")
	git := gittest.StartHTTPServer(t, up.Bare, "git-token-value")
	fake := forgetest.Start(t, "fleet/avalanche", up.Bare, "forge-token-value")
	h := startForgeHost(t, dir, git.URL, fake.URL)
	fake.Wait(t, 2, time.Minute)

	// A build failure, whose failure status the forge answers 500 and 503 first.
	fake.FailState(forge.Failure, 500, 503)
	c2 := flake(nixtest.FlakeOptions{Marker: "two", BuildFail: true}, "does not build")
	h.sync(t, "failed")
	fake.Wait(t, 4, time.Minute)
	if n := fake.Attempts(); n != 6 {
		t.Errorf("forge saw %d requests; want 6 (4 statuses, 2 of them answered 5xx)", n)
	}

	c3 := flake(nixtest.FlakeOptions{Marker: "three", ActivationExit: 1}, "fails to activate")
	h.sync(t, "rolled-back")
	fake.Wait(t, 6, time.Minute)

	// The forge goes away: the deployment does not wait for it, status
	// says so, and the outcome stays queued across a restart.
	fake.Stop()
	c4 := flake(nixtest.FlakeOptions{Marker: "four"}, "fine again")
	h.sync(t, "deployed")
	waitFor(t, time.Minute, func() bool { f := h.status(t).Forge; return f != nil && !f.FailingSince.IsZero() })
	var out bytes.Buffer
	WriteStatus(&out, Redact(h.status(t), h.cfg), time.Now())
	if !strings.Contains(out.String(), "CANNOT REACH fleet/avalanche on "+fake.URL) || !strings.Contains(out.String(), "connection refused") {
		t.Errorf("status with the forge down:\n%s\nwant CANNOT REACH fleet/avalanche on %s ... connection refused", out.String(), fake.URL)
	}
	h.stop()
	if b, err := os.ReadFile(h.cfg.QueuePath()); err != nil || !strings.Contains(string(b), c4) {
		t.Fatalf("queue after the stop = %s, %v; want the status of %s", b, err, c4)
	}
	fake.Restart(t)
	h = startForgeHost(t, dir, git.URL, fake.URL)

	got := fake.Wait(t, 7, time.Minute)
	var lines []string
	for _, r := range got {
		lines = append(lines, fmt.Sprintf("%s %s %s %s", r.SHA, r.Status.Context, r.Status.State, strings.Fields(r.Status.Description)[0]))
	}
	want := []string{
		c1 + " avalanche/eagle pending deploying", c1 + " avalanche/eagle success deployed",
		c2 + " avalanche/eagle pending deploying", c2 + " avalanche/eagle failure failed:",
		c3 + " avalanche/eagle pending deploying", c3 + " avalanche/eagle failure rolled",
		c4 + " avalanche/eagle success deployed",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("statuses on the forge (-want +got):\n%s", diff)
	}
	if d := got[3].Status.Description; !strings.Contains(d, "failed: building") || !strings.Contains(d, "exit code 1") {
		t.Errorf("build failure status description = %q; want the build error", d)
	}
	if d := got[5].Status.Description; !strings.HasPrefix(d, "rolled back: ") || !strings.Contains(d, "activat") {
		t.Errorf("rollback status description = %q; want rolled back and the activation failure", d)
	}
	waitFor(t, time.Minute, func() bool { f := h.status(t).Forge; return f != nil && f.Queued == 0 && f.Error == "" })
}

// fakeReleaser is a builder role whose releases are given.
type fakeReleaser struct {
	found release.Found
	err   error
	// building runs while it "builds".
	building func()
}

func (f fakeReleaser) Release(ctx context.Context, commit string) (release.Found, error) {
	f.building()
	return f.found, f.err
}

func (f fakeReleaser) Progress() builder.Progress { return builder.Progress{} }

// TestBuilderStatuses: the builder role's releases become avalanche/builder
// statuses, pending then the outcome, through the same queue.
func TestBuilderStatuses(t *testing.T) {
	repo := gittest.NewRepo(t)
	commit := repo.Commit(t, map[string]string{"flake.nix": "{}"}, "fleet")
	fake := forgetest.Start(t, "fleet/avalanche", repo.Dir, "tok")
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"version": 1, "hostname": "cardinal", "stateDir": dir,
		"repository": map[string]any{"url": "https://git.internal/fleet/avalanche.git"},
		"report":     map[string]any{"forge": map[string]any{"url": fake.URL, "tokenFile": writeFile(t, dir, "tok", "tok")}}})
	cfg, err := config.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	found := release.Found{Release: release.Release{Commit: commit, Hosts: map[string]release.Host{
		"eagle": {OutPath: "/nix/store/x"}, "raccoon03": {Error: "build failed"}}}}
	// While it builds, the pending status reaches the forge.
	building := func() { fake.Wait(t, 1, 10*time.Second) }
	if _, err := reportRelease(fakeReleaser{found: found, building: building}, r).Release(ctx, commit); err != nil {
		t.Fatal(err)
	}
	if reportRelease(nil, r) != nil {
		t.Errorf("reportRelease(nil, r) is not nil: a host without the builder role would get one")
	}
	got := fake.Wait(t, 2, 10*time.Second)
	var lines []string
	for _, g := range got {
		lines = append(lines, fmt.Sprintf("%s %s: %s", g.Status.Context, g.Status.State, g.Status.Description))
	}
	want := []string{"avalanche/builder pending: building every host's system", "avalanche/builder failure: 1 host built; failed: raccoon03"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("builder statuses (-want +got):\n%s", diff)
	}
}

// TestRedactForge: the forge's error in status never shows the token file.
func TestRedactForge(t *testing.T) {
	c := &config.Config{Report: config.Report{Forge: config.Forge{TokenFile: "/run/secrets/forge-token"}}}
	msg := "reading report.forge.tokenFile: token refused: open /run/secrets/forge-token: permission denied"
	s := Redact(status.Status{Forge: &status.Forge{Error: msg}}, c)
	if strings.Contains(s.Forge.Error, "/run/secrets/forge-token") || !strings.Contains(s.Forge.Error, "permission denied") {
		t.Errorf("Redact(forge error) = %q; want the path redacted, the cause kept", s.Forge.Error)
	}
	if r := redactor(c)("rolled back: open /run/secrets/forge-token"); strings.Contains(r, "forge-token") {
		t.Errorf("redactor (used for forge descriptions) = %q; want the path redacted", r)
	}
}
