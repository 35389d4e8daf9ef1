package nspawntest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Machine is a booted container: systemd 252 as PID 1 on an overlay over
// the cached rootfs (the cached tree is only ever a lower layer). It shares
// the host's network, so a server on the host's loopback is reachable.
type Machine struct {
	// Root is the container's root as the host sees it (the overlay).
	Root string

	name   string
	binds  []string
	log    string
	cmd    *exec.Cmd
	done   chan error
	leader int
}

// Require fails t unless this machine can boot a container: root,
// systemd-nspawn and nsenter, overlayfs, and the rootfs .ci/rootfs prints.
func Require(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the real-systemd tier needs root (it mounts an overlay and runs systemd-nspawn)")
	}
	for _, prog := range []string{"systemd-nspawn", "nsenter", "nix-instantiate", "go"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("the real-systemd tier needs %s (apt-get install systemd-container util-linux nix-bin; .ci/install does): %v", prog, err)
		}
	}
	return rootfs(t)
}

// rootfs runs .ci/rootfs, which builds the rootfs once and prints its path.
func rootfs(t testing.TB) string {
	t.Helper()
	script := filepath.Join(RepoRoot(t), ".ci", "rootfs")
	out, err := exec.Command(script).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		t.Fatalf("%s: %v (it needs debootstrap and Debian's archive; .ci/install runs it)", script, err)
	}
	return strings.TrimSpace(string(out))
}

// RepoRoot is the repository holding this package (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; dir != "/"; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	t.Fatal("no go.mod above the test's directory")
	return ""
}

// NewMachine lays an overlay over lower (the cached rootfs) under t's
// temporary directory; binds are host directories the container sees at
// the same path. Install files into m.Root, then Boot.
func NewMachine(t testing.TB, lower, name string, binds ...string) *Machine {
	t.Helper()
	dir := t.TempDir()
	m := &Machine{Root: filepath.Join(dir, "root"), name: name, binds: binds, log: filepath.Join(dir, "console.log")}
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if err := syscall.Mount("overlay", m.Root, "overlay", 0, opts); err != nil {
		t.Fatalf("mounting an overlay over %s: %v", lower, err)
	}
	t.Cleanup(func() {
		m.shutdown()
		if err := syscall.Unmount(m.Root, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", m.Root, err)
		}
	})
	return m
}

// Boot starts systemd in the container and waits until it has finished
// booting (running or degraded).
func (m *Machine) Boot(t testing.TB) {
	t.Helper()
	argv := []string{"systemd-nspawn", "--quiet", "--directory=" + m.Root, "--machine=" + m.name,
		"--register=no", "--keep-unit", "--console=passive", "--boot"}
	for _, b := range m.binds {
		argv = append(argv[:len(argv)-1], "--bind="+b, "--boot")
	}
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	m.cmd = exec.Command(argv[0], argv[1:]...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	m.done = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(m.cmd, m.done)
	m.leader = 0
	deadline := time.Now().Add(60 * time.Second)
	for m.leader == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the container did not start within 60s; console:\n%s", m.Console())
		}
		m.leader = m.findLeader()
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		// "offline" until systemd's private socket listens.
		out, _ := m.RunContext(ctx, "systemctl", "is-system-running", "--wait")
		s := strings.TrimSpace(out)
		if s == "running" || s == "degraded" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the container did not finish booting (is-system-running: %q); console:\n%s", s, m.Console())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findLeader returns the container's PID 1 as the host sees it, 0 until
// systemd runs.
func (m *Machine) findLeader() int {
	pid := m.cmd.Process.Pid
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(data)) {
		child, _ := strconv.Atoi(f)
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(comm)) == "systemd" {
			return child
		}
	}
	return 0
}

// Console is what the container printed on its console.
func (m *Machine) Console() string {
	data, _ := os.ReadFile(m.log)
	return string(data)
}

// Run runs argv inside the container (every namespace of its PID 1, a
// clean environment) and returns its stdout; the error carries argv and
// the tail of stderr.
func (m *Machine) Run(t testing.TB, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return m.RunContext(ctx, argv...)
}

// MustRun is Run that fails t on error.
func (m *Machine) MustRun(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := m.Run(t, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunContext is Run bounded by ctx.
func (m *Machine) RunContext(ctx context.Context, argv ...string) (string, error) {
	full := append([]string{"nsenter", "--target=" + strconv.Itoa(m.leader), "--all",
		"env", "-i", "PATH=" + HostPath, "HOME=/root", "LANG=C.UTF-8", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER="}, argv...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s (in the container): %w: %s", strings.Join(argv, " "), err, tail(stderr.String()))
	}
	return stdout.String(), nil
}

// Reboot reboots the container (systemctl reboot, which ends nspawn) and
// boots it again on the same root: /run and /tmp start empty, as on a host.
func (m *Machine) Reboot(t testing.TB) {
	t.Helper()
	m.Run(t, "systemctl", "reboot")
	select {
	case <-m.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the container did not shut down within 60s for a reboot; console:\n%s", m.Console())
	}
	m.cmd = nil
	m.Boot(t)
}

// shutdown powers the container off (SIGTERM to nspawn asks systemd to
// halt), killing it after 20s.
func (m *Machine) shutdown() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.done:
		return
	default:
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}
