package daemon_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/cli"
	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// host is a sandboxed host: an upstream repository served by a real git
// HTTP server, a config, a fake system profile and current-system link.
type host struct {
	t        *testing.T
	dir      string
	up       *nixtest.Repo
	server   *gittest.HTTPServer
	cfgPath  string
	cfg      *config.Config
	actLog   string
	current  string
	opts     nixtest.FlakeOptions
	cancel   context.CancelFunc
	done     chan error
	d        *daemon.Daemon
	mutateFn func(c map[string]any)
	selfPath string // the agent binary this "process" runs
	// setup, when set, changes each daemon start builds before it runs.
	setup func(d *daemon.Daemon)
	// signKey, when set, is the SSH key commit signs every commit with.
	signKey string
}

const hostName = "testhost"

func newHost(t *testing.T, mutate func(c map[string]any)) *host {
	t.Helper()
	nixtest.Require(t)
	dir := t.TempDir()
	h := &host{t: t, dir: dir, up: nixtest.NewRepo(t, "main"), actLog: filepath.Join(dir, "activations.log"),
		current: filepath.Join(dir, "current-system"), mutateFn: mutate}
	h.opts = nixtest.FlakeOptions{Name: hostName, ActivationLog: h.actLog, CurrentSystemLink: h.current, Marker: "v1"}
	// Like Forgejo, the server applies partial-clone filters.
	nixtest.Git(t, dir, "-C", h.up.Bare, "config", "uploadpack.allowFilter", "true")
	h.server = gittest.StartHTTPServer(t, h.up.Bare, "s3cret-token")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600)
	c := map[string]any{
		"version":      1,
		"hostname":     hostName,
		"repository":   map[string]any{"url": h.server.URL, "tokenFile": tokenFile, "allowInsecureHTTP": true},
		"pollInterval": "1h",
		"stateDir":     filepath.Join(dir, "state"),
		"runtimeDir":   filepath.Join(dir, "run"),
		"deploy": map[string]any{
			"profile": filepath.Join(dir, "profiles", "system"), "currentSystem": h.current,
			"bootedSystem": filepath.Join(dir, "booted-system"), "systemdRun": false,
			"confirmTimeout": "4s", "nixArgs": nixtest.Args(),
		},
	}
	if mutate != nil {
		mutate(c)
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	h.cfgPath = filepath.Join(dir, "config.json")
	if err := os.WriteFile(h.cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	h.cfg = loadConfig(t, h.cfgPath)
	return h
}

func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return cfg
}

// commit writes the flake with h.opts plus files and pushes it.
func (h *host) commit(msg string, files map[string]string) string {
	h.t.Helper()
	for name, content := range files {
		h.up.WriteFile(h.t, name, content)
	}
	if h.signKey == "" {
		return h.up.WriteFlake(h.t, h.opts, msg)
	}
	if err := nixtest.WriteFlake(h.up.Work, h.opts); err != nil {
		h.t.Fatal(err)
	}
	return h.commitSigned(msg)
}

// start runs the daemon in this process until the test ends or stop.
func (h *host) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	h.d = newDaemon(h.t, h.cfg)
	h.d.SelfPath = h.selfPath
	if h.setup != nil {
		h.setup(h.d)
	}
	go func() { h.done <- h.d.Run(ctx) }()
	h.t.Cleanup(h.stop)
	waitSocket(h.t, h.cfg.SocketPath())
	h.waitPasses(1)
}

// waitPasses waits until the daemon finished n passes (the first one runs
// at start-up).
func (h *host) waitPasses(n uint64) {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		s := h.status()
		if s.Passes >= n && (s.State == status.Idle || s.State == status.Failed || s.State == status.Suspended || s.State == status.Waiting) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("daemon did not finish %d passes", n)
}

func (h *host) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Errorf("daemon did not stop")
	}
	h.cancel = nil
}

func newDaemon(t testing.TB, c *config.Config) *daemon.Daemon {
	nix := &rebuild.Nix{ExtraArgs: c.Deploy.NixArgs, Env: []string{"XDG_CACHE_HOME=" + filepath.Join(c.StateDir, "..", "cache")}}
	// As the agent builds it: limits, and a commits-only copy for a
	// builder-mode host that waits for releases.
	repo := cli.NewRepo(c)
	repo.Timeout = 30 * time.Second
	d := &daemon.Daemon{
		Config:  c,
		Log:     zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger(),
		Git:     repo,
		Nix:     nix,
		Version: "test",
	}
	// Builder mode and the builder role, wired as the agent wires them.
	src, role, err := cli.BuilderMode(c, nix, repo)
	if err != nil {
		panic(err) // the config passed Validate; the keys are the test's
	}
	d.SetBuilderMode(src, role)
	return d
}

func waitSocket(t testing.TB, sock string) {
	t.Helper()
	c := &client.Client{Socket: sock}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Status(context.Background()); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("agent socket %s never answered", sock)
}

func (h *host) client() *client.Client { return &client.Client{Socket: h.cfg.SocketPath()} }

// sync runs one pass and returns its result.
func (h *host) sync(force bool) status.SyncResult {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := h.client().Sync(ctx, true, force)
	if err != nil {
		h.t.Fatalf("Sync: %v", err)
	}
	return r
}

func (h *host) status() status.Status {
	h.t.Helper()
	s, err := h.client().Status(context.Background())
	if err != nil {
		h.t.Fatalf("Status: %v", err)
	}
	return s
}

// activations returns the lines switch-to-configuration logged: "<action> <out>".
func (h *host) activations() []string {
	b, err := os.ReadFile(h.actLog)
	if err != nil {
		return nil
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "|"))
}

func (h *host) state() *state.State {
	h.t.Helper()
	st, err := state.Load(h.cfg.StatePath())
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func currentTarget(t testing.TB, link string) string {
	p, err := filepath.EvalSymlinks(link)
	if err != nil {
		return ""
	}
	return p
}

func (h *host) switchLog() string { return filepath.Join(h.dir, "switch.log") }

// switchEvents returns the lines of the switch log: "begin|<action>|<out>"
// and "end|<action>|<out>|<status>".
func (h *host) switchEvents() []string {
	b, _ := os.ReadFile(h.switchLog())
	var ev []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			ev = append(ev, strings.ReplaceAll(l, " ", "|"))
		}
	}
	return ev
}

// waitSwitchBegins waits until n switches have begun.
func (h *host) waitSwitchBegins(n int) {
	h.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		begins := 0
		for _, e := range h.switchEvents() {
			if strings.HasPrefix(e, "begin|") {
				begins++
			}
		}
		if begins >= n {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("switch %d never began; switch log %q", n, h.switchEvents())
		}
	}
}

// checkNoOverlap fails when a switch began while another one ran: the
// agent must never run two switch-to-configuration at once. A switch
// killed with everything else (a power cut) has no end line; the next
// begin after a restart is not an overlap when allowKilled says so.
func (h *host) checkNoOverlap(allowKilled int) {
	h.t.Helper()
	running, killed := 0, 0
	for i, e := range h.switchEvents() {
		switch {
		case strings.HasPrefix(e, "begin|") && running > 0 && killed < allowKilled:
			killed++
		case strings.HasPrefix(e, "begin|") && running > 0:
			h.t.Errorf("switch log line %d %q began while another switch ran; log %q", i+1, e, h.switchEvents())
			return
		case strings.HasPrefix(e, "begin|"):
			running++
		case strings.HasPrefix(e, "end|"):
			running--
		}
	}
}
