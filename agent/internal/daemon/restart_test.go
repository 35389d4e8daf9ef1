package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// configEnv makes the test binary run a daemon from that config file
// instead of the tests, so a test can kill -9 a real agent process.
const configEnv = "AVALANCHE_TEST_DAEMON_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(configEnv); path != "" {
		os.Exit(daemonMain(path))
	}
	os.Exit(m.Run())
}

// daemonMain runs a daemon built as newDaemon builds it, logging to stderr,
// until SIGTERM.
func daemonMain(path string) int {
	c, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	d := newDaemon(nil, c) // the test logger is replaced before any use
	d.Log = zerolog.New(os.Stderr).With().Timestamp().Int("pid", os.Getpid()).Logger()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		return 1
	}
	return 0
}

// child is a daemon running in a separate process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild runs the daemon for h's config in a new process with extra
// environment and waits until its socket answers.
func (h *host) startChild(env ...string) *child {
	h.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		h.t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(h.dir, "children.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), configEnv+"="+h.cfgPath), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // never in the test's process group
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("starting daemon process: %v", err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	h.t.Cleanup(func() { c.stop(h.t) })
	h.t.Cleanup(func() { // runs first: show what the daemons said
		if h.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			h.t.Logf("daemon processes' log:\n%s", b)
		}
	})
	waitSocket(h.t, h.cfg.SocketPath())
	return c
}

// stop ends the daemon with SIGTERM, or kills its tree if it lingers.
func (c *child) stop(t testing.TB) {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Errorf("daemon process %d ignored SIGTERM", c.cmd.Process.Pid)
		c.killTree(t)
	}
}

// kill sends SIGKILL to the daemon process alone: what it started in its
// own process groups (a transient systemd unit, say) lives on.
func (c *child) kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 %d: %v", c.cmd.Process.Pid, err)
	}
	c.wait(t)
}

// killTree freezes the daemon and all its descendants (nix, builders,
// switch scripts, whatever process group they chose) and SIGKILLs them,
// the way systemd's KillMode=control-group or a power cut ends them. It
// returns how many processes it killed.
func (c *child) killTree(t testing.TB) int {
	t.Helper()
	tree := map[int]bool{}
	freeze := func(pid int) {
		syscall.Kill(pid, syscall.SIGSTOP)
		waitStopped(pid)
		tree[pid] = true
	}
	freeze(c.cmd.Process.Pid)
	for grew := true; grew; {
		grew = false
		for pid, ppid := range processes() {
			if tree[ppid] && !tree[pid] {
				freeze(pid)
				grew = true
			}
		}
	}
	for pid := range tree {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	c.wait(t)
	for pid := range tree {
		for i := 0; ; i++ {
			st := procStat(pid)
			if len(st) == 0 || st[0] == "Z" {
				break
			}
			if i == 500 {
				t.Errorf("process %d survived SIGKILL", pid)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return len(tree)
}

func (c *child) wait(t testing.TB) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon process %d did not die", c.cmd.Process.Pid)
	}
}

// processes maps every pid to its parent pid.
func processes() map[int]int {
	ents, _ := os.ReadDir("/proc")
	m := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st := procStat(pid); len(st) > 1 {
			m[pid], _ = strconv.Atoi(st[1])
		}
	}
	return m
}

// procStat returns the fields of /proc/<pid>/stat after the command name:
// state, ppid, pgrp, ...
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// waitStopped waits briefly until pid is stopped (or gone), so that a fork
// it was in the middle of shows up in /proc.
func waitStopped(pid int) {
	for range 200 {
		st := procStat(pid)
		if len(st) == 0 || st[0] == "T" || st[0] == "t" || st[0] == "Z" {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// waitState polls the status until the daemon is in state want.
func (h *host) waitState(want string, timeout time.Duration) status.Status {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var s status.Status
	for time.Now().Before(deadline) {
		s = h.status()
		if s.State == want {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("daemon never reached state %q; last status: state %q, error %q", want, s.State, s.LastError)
	return s
}

// triggerSync asks for a pass without waiting for it.
func (h *host) triggerSync() {
	h.t.Helper()
	if _, err := h.client().Sync(context.Background(), false, false); err != nil {
		h.t.Fatalf("Sync: %v", err)
	}
}

// countActivations counts activation log lines "<action> <out>".
func (h *host) countActivations(action, out string) int {
	n := 0
	for _, a := range h.activations() {
		if a == action+"|"+out {
			n++
		}
	}
	return n
}

// checkSettled asserts that the state file decodes, nothing is pending and
// commit is what the host runs.
func (h *host) checkSettled(commit string) *state.State {
	h.t.Helper()
	st := h.state()
	if st.Pending != nil {
		h.t.Errorf("state.Pending = %+v; want nil", st.Pending)
	}
	if st.Deployed == nil || st.Deployed.Commit != commit {
		h.t.Fatalf("state.Deployed = %+v; want commit %s", st.Deployed, commit)
	}
	return st
}

func TestKillDuringBuild(t *testing.T) {
	h := newHost(t, nil)
	h.opts.BuildSleep = 3 * time.Second
	target := h.commit("slow build", nil)
	c := h.startChild()
	h.triggerSync()
	h.waitState(status.Building, 20*time.Second)
	if n := c.killTree(t); n < 2 {
		t.Fatalf("killed %d processes; want the daemon and the build it runs", n)
	}

	h.startChild()
	r := h.sync(false)
	if r.Result != "deployed" && r.Result != "unchanged" {
		t.Fatalf("sync after the restart = %+v; want deployed (or unchanged after the start-up pass deployed)", r)
	}
	st := h.checkSettled(target)
	if st.Deployed.Result != "deployed" {
		t.Errorf("state.Deployed.Result = %q; want deployed", st.Deployed.Result)
	}
	out := currentTarget(t, h.current)
	if out == "" || st.Deployed.StorePath != out {
		t.Errorf("current system = %q; want the deployed %q", out, st.Deployed.StorePath)
	}
	if n := h.countActivations("switch", out); n != 1 || len(h.activations()) != 1 {
		t.Errorf("activations = %q; want exactly one switch to %s", h.activations(), out)
	}
}

// interruptActivation deploys a first commit, then kills the daemon while
// the second one's switch-to-configuration runs in its transient unit
// (sleeping 3 s before it changes anything). It returns the second commit,
// its store path and the environment that puts the fake systemd first.
func interruptActivation(t *testing.T, h *host, kill func(*child)) (first, second, out string, env []string) {
	t.Helper()
	env, _ = nixtest.FakeSystemd(t, h.dir)
	slow := filepath.Join(h.dir, "slow-switch")
	h.opts.SwitchLog, h.opts.SwitchSleep, h.opts.SwitchSlowMarker = h.switchLog(), 3*time.Second, slow
	first = h.commit("first", nil)
	c := h.startChild(env...)
	if r := h.sync(false); !r.OK { // the start-up pass or this one deploys it
		t.Fatalf("first sync = %+v", r)
	}
	h.checkSettled(first)
	if err := os.WriteFile(slow, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.opts.Marker = "v2"
	second = h.commit("second", nil)
	h.triggerSync()
	s := h.waitState(status.Activating, 20*time.Second)
	if s.Pending == nil || s.Pending.Commit != second {
		t.Fatalf("status.Pending while activating = %+v; want %s", s.Pending, second)
	}
	h.waitSwitchBegins(2)
	kill(c)
	os.Remove(slow)
	return first, second, s.Pending.StorePath, env
}

// TestKillDuringActivationSwitchDies: a power cut (the whole process tree
// killed) while the switch unit waits to run. The next start cannot know
// how far the switch got, so it returns to the previous system; the power
// cut was not the commit's fault, so the commit deploys again at once.
func TestKillDuringActivationSwitchDies(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["deploy"].(map[string]any)["systemdRun"] = true })
	_, second, out, env := interruptActivation(t, h, func(c *child) { c.killTree(t) })
	good := h.state().Deployed.StorePath

	h.startChild(env...)
	if r := h.sync(false); !r.OK || (r.Result != "deployed" && r.Result != "unchanged") {
		t.Errorf("sync after the restart = %+v; want the second commit deployed (no verdict for a power cut)", r)
	}
	st := h.checkSettled(second)
	if b := st.IsBad(second); b != nil {
		t.Errorf("IsBad(%s) = %+v; want no verdict: the power cut was not the commit's fault", second, b)
	}
	if got := currentTarget(t, h.current); got != out {
		t.Errorf("current system = %q; want the second system %q", got, out)
	}
	acts := h.activations()
	if n := len(acts); n < 3 || acts[n-2] != "switch|"+good || acts[n-1] != "switch|"+out {
		t.Errorf("activations = %q; want the return to the first system, then the second again", acts)
	}
	interrupted := false
	for _, d := range st.History {
		interrupted = interrupted || (d.Commit == second && d.Result == "interrupted")
	}
	if !interrupted {
		t.Errorf("history = %+v; want the interrupted attempt of %s recorded", st.History, second)
	}
}

func TestKillDuringActivationSwitchSurvives(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["deploy"].(map[string]any)["systemdRun"] = true })
	_, second, out, env := interruptActivation(t, h, func(c *child) { c.kill(t) })
	// Like a transient systemd unit, the switch outlives the agent.
	for deadline := time.Now().Add(10 * time.Second); currentTarget(t, h.current) != out; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the orphaned switch never finished; activations %q", h.activations())
		}
	}

	h.startChild(env...)
	if r := h.sync(false); !r.OK {
		t.Errorf("sync after the restart = %+v; want ok", r)
	}
	st := h.checkSettled(second)
	if st.Deployed.Result != "deployed" || st.Deployed.StorePath != out || st.IsBad(second) != nil {
		t.Errorf("state.Deployed = %+v, bad %+v; want %s deployed at %s", st.Deployed, st.IsBad(second), second, out)
	}
	if n := h.countActivations("switch", out); n != 1 {
		t.Errorf("activations = %q; want exactly one switch to %s", h.activations(), out)
	}
}

// TestRestartWhileSwitchStillRuns: the agent comes back while its
// transient switch unit is still running; it must wait for the unit, then
// confirm, not roll back under a switch that is about to finish.
func TestRestartWhileSwitchStillRuns(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["deploy"].(map[string]any)["systemdRun"] = true })
	_, second, out, env := interruptActivation(t, h, func(c *child) { c.kill(t) })
	if currentTarget(t, h.current) == out {
		t.Fatal("the switch finished before the restart; the test needs it still running")
	}
	h.startChild(env...)
	if r := h.sync(false); !r.OK {
		t.Errorf("sync after the restart = %+v; want ok", r)
	}
	st := h.checkSettled(second)
	if st.Deployed.StorePath != out || st.IsBad(second) != nil {
		t.Errorf("state.Deployed = %+v, bad %+v; want %s deployed at %s", st.Deployed, st.IsBad(second), second, out)
	}
	if got := currentTarget(t, h.current); got != out {
		t.Errorf("current system = %q; want %q", got, out)
	}
	if n := h.countActivations("switch", out); n != 1 {
		t.Errorf("activations = %q; want exactly one switch to %s", h.activations(), out)
	}
}

func TestKillAtRandomKeepsStateDecodable(t *testing.T) {
	h := newHost(t, nil)
	deployed := h.commit("first", nil)
	// A large state file makes a torn write likely if writes were not atomic.
	seed := &state.State{}
	for i := range state.BadLimit {
		seed.MarkBad(fmt.Sprintf("%040d", i), "build", strings.Repeat("reason ", 20), time.Now())
	}
	for i := range state.HistoryLimit {
		seed.Record(state.Deployment{Commit: fmt.Sprintf("%040d", i), Result: "deployed", Time: time.Now()})
	}
	if err := os.MkdirAll(h.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := state.Save(h.cfg.StatePath(), seed); err != nil {
		t.Fatal(err)
	}
	c := h.startChild()
	if r := h.sync(false); !r.OK {
		t.Fatalf("first sync = %+v", r)
	}
	for i := range 4 {
		stop := make(chan struct{})
		done := make(chan int)
		go func() { done <- hammer(h, stop) }()
		time.Sleep(time.Duration(50+rand.IntN(300)) * time.Millisecond)
		c.killTree(t)
		close(stop)
		writes := <-done
		st, err := state.Load(h.cfg.StatePath())
		if err != nil {
			t.Fatalf("kill %d (after %d state-changing requests): state.Load = %v; want a decodable file", i, writes, err)
		}
		if st.Deployed == nil || st.Deployed.Commit != deployed || len(st.Bad) != state.BadLimit {
			t.Fatalf("kill %d: state lost data: deployed %+v, %d bad commits", i, st.Deployed, len(st.Bad))
		}
		t.Logf("kill %d after %d state-changing requests: state decodes", i, writes)
		c = h.startChild()
	}
	if tmp, _ := filepath.Glob(filepath.Join(h.cfg.StateDir, ".state.json.tmp-*")); len(tmp) > 0 {
		t.Logf("temporary state files left by kills: %d", len(tmp))
	}
	if s := h.status(); s.Deployed == nil || s.Deployed.Commit != deployed {
		t.Errorf("status after the last restart: deployed %+v; want %s", s.Deployed, deployed)
	}
}

// hammer suspends, resumes and syncs (each a state write or a pass) until
// stop or the daemon dies; it returns how many requests succeeded.
func hammer(h *host, stop chan struct{}) int {
	c := h.client()
	ctx := context.Background()
	n := 0
	for {
		select {
		case <-stop:
			return n
		default:
		}
		var err error
		switch n % 3 {
		case 0:
			err = c.Suspend(ctx)
		case 1:
			err = c.Resume(ctx)
		default:
			_, err = c.Sync(ctx, false, false)
		}
		if err != nil {
			<-stop
			return n
		}
		n++
	}
}
