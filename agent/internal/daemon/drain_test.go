package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
)

// drainHost is a host with deploy.drain enabled and a stand-in for
// avalanche-drain that logs each command with what the host ran then, and
// fails `drain` while the file fail exists. (The real helper is tested
// against a real API server in agent/drain; the agent's module does not
// link client-go, so this side sees only its command line.)
type drainHost struct {
	*host
	log, fail string
}

func newDrainHost(t *testing.T, mutate func(c map[string]any)) *drainHost {
	dir := t.TempDir()
	dh := &drainHost{log: filepath.Join(dir, "helper.log"), fail: filepath.Join(dir, "fail")}
	helper := filepath.Join(dir, "avalanche-drain")
	script := fmt.Sprintf(`#!/bin/sh
for a; do cmd=$a; done
echo "$cmd $* running=$(/bin/readlink %s)" >> %s
if [ "$cmd" = drain ] && [ -e %s ]; then
  echo "drain: pod default/web-1 is held by PodDisruptionBudget default/web (0 disruptions allowed)" >&2
  exit 1
fi
`, "$CURRENT", dh.log, dh.fail)
	dh.host = newHost(t, func(c map[string]any) {
		c["deploy"].(map[string]any)["drain"] = map[string]any{"enable": true, "helper": helper,
			"kubeconfig": "/etc/rancher/k3s/k3s.yaml", "node": "raccoon01", "timeout": "2m"}
		if mutate != nil {
			mutate(c)
		}
	})
	script = strings.ReplaceAll(script, "$CURRENT", dh.current)
	if err := os.WriteFile(helper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dh.opts.K3sUnit = "[Service]\nExecStart=/nix/store/k3s-1.33/bin/k3s agent\n"
	return dh
}

// calls returns the helper's commands, "<command> running=<system>".
func (dh *drainHost) calls() []string {
	b, _ := os.ReadFile(dh.log)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		out = append(out, f[0]+" "+f[len(f)-1])
	}
	return out
}

func (dh *drainHost) record() string {
	b, _ := os.ReadFile(filepath.Join(dh.cfg.StateDir, "drain.json"))
	return string(b)
}

// TestDrainAroundK3sRestart: a switch that changes k3s.service drains the
// node first (while the old system runs), then switches, then waits for
// Ready and uncordons; a switch that leaves k3s alone runs no helper.
func TestDrainAroundK3sRestart(t *testing.T) {
	dh := newDrainHost(t, nil)
	dh.commit("k3s 1.33", nil)
	dh.start() // the first system: nothing ran k3s before it, no drain
	if c := dh.calls(); len(c) != 0 {
		t.Fatalf("helper ran for the first system: %q", c)
	}
	old := currentTarget(t, dh.current)
	dh.opts.K3sUnit = "[Service]\nExecStart=/nix/store/k3s-1.34/bin/k3s agent\n"
	dh.opts.Marker = "k3s 1.34"
	dh.commit("k3s 1.34", nil)
	if r := dh.sync(false); r.Result != "deployed" {
		t.Fatalf("sync = %+v; want deployed", r)
	}
	next := currentTarget(t, dh.current)
	want := []string{"drain running=" + old, "wait-ready running=" + next, "uncordon running=" + next}
	if got := dh.calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("helper calls = %q; want %q", got, want)
	}
	if r := dh.record(); r != "" {
		t.Errorf("drain record left after the uncordon: %s", r)
	}

	dh.opts.Marker = "an unrelated change"
	dh.commit("motd", nil)
	if r := dh.sync(false); r.Result != "deployed" {
		t.Fatalf("sync = %+v; want deployed", r)
	}
	if got := dh.calls(); len(got) != len(want) {
		t.Errorf("helper calls after a switch that leaves k3s alone = %q; want none new", got[len(want):])
	}
}

// TestDrainFailureDoesNotSwitch: a drain that fails (a budget that never
// allows the eviction) uncordons the node and does not switch; it is
// cluster trouble, no verdict, and the commit deploys once the drain
// succeeds.
func TestDrainFailureDoesNotSwitch(t *testing.T) {
	dh := newDrainHost(t, nil)
	dh.commit("k3s 1.33", nil)
	dh.start()
	old := currentTarget(t, dh.current)
	os.WriteFile(dh.fail, nil, 0o644)
	dh.opts.K3sUnit = "[Service]\nExecStart=/nix/store/k3s-1.34/bin/k3s agent\n"
	c := dh.commit("k3s 1.34", nil)
	r := dh.sync(false)
	if r.Result != "failed" || !strings.Contains(r.Error, "PodDisruptionBudget default/web") {
		t.Fatalf("sync with a drain that fails = %+v; want failed with the helper's reason", r)
	}
	if le := dh.state().LastError; le == nil || le.Class != "host" || le.Phase != "drain" {
		t.Errorf("last error = %+v; want class host in phase drain", le)
	}
	if cur := currentTarget(t, dh.current); cur != old {
		t.Errorf("the host switched to %s although the drain failed", cur)
	}
	want := []string{"drain running=" + old, "uncordon running=" + old}
	if got := dh.calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("helper calls = %q; want %q", got, want)
	}
	if rec := dh.record(); rec != "" {
		t.Errorf("drain record left after the uncordon: %s", rec)
	}
	if bad := dh.state().IsBad(c); bad != nil {
		t.Errorf("commit refused after a failed drain: %+v; a drain is no verdict", bad)
	}
	os.Remove(dh.fail)
	if r := dh.sync(false); r.Result != "deployed" {
		t.Fatalf("sync once the budget allows = %+v; want deployed", r)
	}
}

// TestDrainRecoveredAfterCrash: a node the agent cordoned before it died
// (its record in the state directory) is uncordoned at the next start,
// once Ready.
func TestDrainRecoveredAfterCrash(t *testing.T) {
	dh := newDrainHost(t, nil)
	dh.commit("k3s 1.33", nil)
	os.MkdirAll(dh.cfg.StateDir, 0o700)
	rec := `{"node":"raccoon01","reason":"switch","boot":"b","time":"2026-12-08T00:00:00Z"}`
	if err := os.WriteFile(filepath.Join(dh.cfg.StateDir, "drain.json"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	dh.start()
	got := dh.calls()
	if len(got) != 2 || !strings.HasPrefix(got[0], "wait-ready") || !strings.HasPrefix(got[1], "uncordon") {
		t.Errorf("helper calls at start with a node left cordoned = %q; want wait-ready, uncordon", got)
	}
	if r := dh.record(); r != "" {
		t.Errorf("drain record left after the uncordon: %s", r)
	}
}

// TestDrainAroundReboot: with reboots on, the node is drained before the
// reboot and stays cordoned until the next boot, which waits for a fresh
// Ready (-since the drain) and uncordons.
func TestDrainAroundReboot(t *testing.T) {
	bin := t.TempDir()
	ctlLog := filepath.Join(bin, "systemctl.log")
	os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+ctlLog+"\n"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	now := time.Now()
	window := fmt.Sprintf("%s-%s", now.Add(-time.Hour).Format("15:04"), now.Add(time.Hour).Format("15:04"))
	dh := newDrainHost(t, func(c map[string]any) {
		c["deploy"].(map[string]any)["reboot"] = map[string]any{"enable": true, "window": window}
	})
	dh.commit("first", nil)
	dh.start()
	os.Symlink(currentTarget(t, dh.current), dh.cfg.Deploy.BootedSystem)
	dh.opts.Kernel, dh.opts.Marker = "kernel 6.18.1", "new kernel"
	dh.commit("new kernel", nil)
	if r := dh.sync(false); r.Result != "deployed" {
		t.Fatalf("sync = %+v", r)
	}
	if got := dh.calls(); len(got) != 1 || !strings.HasPrefix(got[0], "drain") {
		t.Errorf("helper calls before the reboot = %q; want one drain", got)
	}
	if b, _ := os.ReadFile(ctlLog); strings.TrimSpace(string(b)) != "reboot" {
		t.Errorf("systemctl calls = %q; want one reboot", b)
	}
	if r := dh.record(); !strings.Contains(r, `"reason":"reboot"`) {
		t.Fatalf("drain record before the reboot = %q; want reason reboot", r)
	}
	dh.sync(false) // the same boot: the reboot has not happened, nothing is uncordoned
	if got := dh.calls(); len(got) != 1 {
		t.Errorf("helper calls before the reboot happened = %q; want only the drain", got)
	}
	dh.stop()
	dh.setup = func(d *daemon.Daemon) { d.Clock.ID = func() string { return "the next boot" } }
	dh.start()
	got := dh.calls()
	if len(got) != 3 || !strings.HasPrefix(got[1], "wait-ready") || !strings.HasPrefix(got[2], "uncordon") {
		t.Fatalf("helper calls after the reboot = %q; want drain, wait-ready, uncordon", got)
	}
	b, _ := os.ReadFile(dh.log)
	if !strings.Contains(string(b), "-since=") {
		t.Errorf("wait-ready after a reboot without -since: %s", b)
	}
	if r := dh.record(); r != "" {
		t.Errorf("drain record left after the uncordon: %s", r)
	}
}
