package modules

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hook is the builders' post-build hook script as role-builder.nix renders
// it, with nix replaced by a fake that records its arguments and exits
// with the status in fakeStatus.
type hook struct {
	script, queue, calls, status string
}

func newHook(t *testing.T) *hook {
	t.Helper()
	f := newFleet(t)
	f.writeSecrets(t, []string{"opi01"})
	var r report
	f.mustEval(t, `report "opi01"`, &r)
	if r.PostBuildHook == nil {
		t.Fatal("opi01 (a builder) has no nix.settings.post-build-hook")
	}
	var nixExe string
	f.mustEval(t, `stubExe "aarch64-linux" "nix"`, &nixExe)
	if !strings.Contains(*r.PostBuildHook, nixExe) {
		t.Fatalf("the hook does not run %s:\n%s", nixExe, *r.PostBuildHook)
	}
	dir := t.TempDir()
	h := &hook{
		script: filepath.Join(dir, "push-to-possum"),
		queue:  filepath.Join(dir, "queue"),
		calls:  filepath.Join(dir, "calls"),
		status: filepath.Join(dir, "status"),
	}
	fake := filepath.Join(dir, "nix")
	writeFile(t, fake, fmt.Sprintf("#!/bin/sh\necho \"$@\" >>%s\nexit $(cat %s)\n", h.calls, h.status))
	writeFile(t, h.script, strings.ReplaceAll(*r.PostBuildHook, nixExe, fake))
	for _, f := range []string{fake, h.script} {
		if err := os.Chmod(f, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// run runs the script as the Nix daemon would (OUT_PATHS) or as the retry
// unit does (--retry), with nix exiting with status.
func (h *hook) run(t *testing.T, status int, outPaths string, args ...string) (int, string) {
	t.Helper()
	writeFile(t, h.status, fmt.Sprint(status))
	os.Remove(h.calls)
	cmd := exec.Command("bash", append([]string{h.script}, args...)...)
	cmd.Env = append(os.Environ(), "OUT_PATHS="+outPaths, "PUSH_TO_POSSUM_QUEUE="+h.queue)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("running the hook: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

func (h *hook) read(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// Nix stops its build loop when the post-build hook fails, so a failed
// upload must not fail the hook: the paths are queued instead, and the
// retry uploads those still in the store, keeping them queued while possum
// stays unreachable.
func TestPostBuildHookNeverFailsTheBuild(t *testing.T) {
	h := newHook(t)
	store := t.TempDir()
	a, b, gone := filepath.Join(store, "a"), filepath.Join(store, "b"), filepath.Join(store, "gone")
	for _, p := range []string{a, b} {
		writeFile(t, p, "")
	}
	cache := "ssh-ng://nix-ssh@possum.internal?ssh-key=/etc/ssh/ssh_host_ed25519_key"

	if code, stderr := h.run(t, 0, a); code != 0 || h.read(t, h.queue) != nil {
		t.Fatalf("hook with a working upload: exit %d, queue %q (%s); want 0 and nothing queued", code, h.read(t, h.queue), stderr)
	}
	if diff := cmp.Diff([]string{"copy", "--to", cache, a}, h.read(t, h.calls)); diff != "" {
		t.Errorf("nix call (-want +got):\n%s", diff)
	}

	if code, stderr := h.run(t, 1, a+" "+gone); code != 0 {
		t.Fatalf("hook with a failing upload exits %d (%s); want 0: a failing hook stops Nix's build loop", code, stderr)
	}
	h.run(t, 1, b)
	if diff := cmp.Diff([]string{a, gone, b}, h.read(t, h.queue)); diff != "" {
		t.Fatalf("queue after two failed uploads (-want +got):\n%s", diff)
	}

	if code, _ := h.run(t, 1, "", "--retry"); code == 0 {
		t.Errorf("retry with possum still unreachable exits 0; want a failure the timer shows")
	}
	if got := h.read(t, h.queue); len(got) != 3 {
		t.Fatalf("queue after a failed retry = %q; want the 3 paths kept", got)
	}

	if code, stderr := h.run(t, 0, "", "--retry"); code != 0 {
		t.Fatalf("retry exits %d: %s", code, stderr)
	}
	if diff := cmp.Diff([]string{"copy", "--to", cache, a, b}, h.read(t, h.calls)); diff != "" {
		t.Errorf("retry's nix call (-want +got; collected paths are skipped):\n%s", diff)
	}
	if got := h.read(t, h.queue); got != nil {
		t.Errorf("queue after a successful retry = %q; want it empty", got)
	}
	if code, _ := h.run(t, 1, "", "--retry"); code != 0 || h.read(t, h.calls) != nil {
		t.Errorf("retry with an empty queue: exit %d, calls %q; want 0 and no upload", code, h.read(t, h.calls))
	}
}
