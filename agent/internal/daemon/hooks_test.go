package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
)

// TestPostDeployHook: the hook runs after a success and after a failure,
// with the outcome in its environment.
func TestPostDeployHook(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hook.log")
	h := newHost(t, func(c map[string]any) {
		c["deploy"].(map[string]any)["postDeployHook"] =
			`echo "$AVALANCHE_RESULT $AVALANCHE_COMMIT gen=$AVALANCHE_GENERATION" >> ` + out +
				`; printf '%s' "${AVALANCHE_ERROR:-}" > ` + out + `.$AVALANCHE_COMMIT.err`
	})
	good := h.commit("good", nil)
	h.start()
	h.opts.BuildFail = true
	bad := h.commit("does not build", nil)
	h.sync(false)
	h.sync(false) // refused: the hook does not run again

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("hook ran %d times: %q; want twice", len(lines), lines)
	}
	if want := "deployed " + good + " gen=1"; lines[0] != want {
		t.Errorf("hook after success = %q; want %q", lines[0], want)
	}
	if want := "failed " + bad + " gen=0"; lines[1] != want {
		t.Errorf("hook after a build failure = %q; want %q", lines[1], want)
	}
	if e, _ := os.ReadFile(out + "." + good + ".err"); len(e) != 0 {
		t.Errorf("AVALANCHE_ERROR after success = %q; want empty", e)
	}
	if e, _ := os.ReadFile(out + "." + bad + ".err"); !strings.Contains(string(e), "build failure requested") {
		t.Errorf("AVALANCHE_ERROR after a build failure = %q; want the build log tail", e)
	}
	hist := h.state().History
	if last := hist[len(hist)-1]; last.Commit != bad || last.Result != "failed" {
		t.Errorf("last history entry = %+v; want %s failed", last, bad)
	}
}

// TestRebootInWindow: a deployment that changes the kernel needs a reboot;
// with reboots enabled and the window open, the agent asks systemd for one.
func TestRebootInWindow(t *testing.T) {
	bin := t.TempDir()
	ctlLog := filepath.Join(bin, "systemctl.log")
	os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+ctlLog+"\n"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	now := time.Now()
	window := fmt.Sprintf("%s-%s", now.Add(-time.Hour).Format("15:04"), now.Add(time.Hour).Format("15:04"))
	h := newHost(t, func(c map[string]any) {
		c["deploy"].(map[string]any)["reboot"] = map[string]any{"enable": true, "window": window}
	})
	h.commit("first", nil)
	h.start()
	// The host booted into the first system.
	first := currentTarget(t, h.current)
	if err := os.Symlink(first, h.cfg.Deploy.BootedSystem); err != nil {
		t.Fatal(err)
	}
	if s := h.status(); s.RebootNeeded {
		t.Fatalf("reboot needed right after boot: %v", s.RebootReasons)
	}
	if _, err := os.Stat(ctlLog); err == nil {
		t.Fatalf("systemctl called before any kernel change")
	}

	h.opts.Kernel = "kernel 6.18.1"
	h.opts.Marker = "new kernel"
	h.commit("new kernel", nil)
	if r := h.sync(false); r.Result != "deployed" {
		t.Fatalf("sync = %+v", r)
	}
	s := h.status()
	if !s.RebootNeeded || len(s.RebootReasons) != 1 || s.RebootReasons[0] != "kernel" {
		t.Errorf("status reboot = %v %v; want needed because of the kernel", s.RebootNeeded, s.RebootReasons)
	}
	b, _ := os.ReadFile(ctlLog)
	if strings.TrimSpace(string(b)) != "reboot" {
		t.Errorf("systemctl calls = %q; want one reboot", b)
	}
}

// TestDeploymentEvents: each deployment reports its start (pending) and its
// end once, a rollback with its reason.
func TestDeploymentEvents(t *testing.T) {
	h := newHost(t, nil)
	var mu sync.Mutex
	var got []string
	h.setup = func(d *daemon.Daemon) {
		d.Hooks.Deployment = func(ev daemon.DeploymentEvent) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%s %s %s", ev.Result, ev.Commit, ev.Class))
			if ev.Result == "rolled-back" && !strings.Contains(ev.Error, "activation failed") {
				t.Errorf("rolled-back event error = %q; want the activation failure", ev.Error)
			}
		}
	}
	good := h.commit("good", nil)
	h.start()
	h.opts.ActivationExit = 1
	bad := h.commit("fails to activate", nil)
	h.sync(false)
	mu.Lock()
	defer mu.Unlock()
	want := []string{"pending " + good + " ", "deployed " + good + " ", "pending " + bad + " ", "rolled-back " + bad + " commit"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deployment events = %q; want %q", got, want)
	}
}
