package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the unprivileged uid and gid the binaries run as.
const nobody = 65534

// TestNonDumpable runs each of the three programs as nobody, blocked
// reading its config, token or request (a FIFO nobody writes to, or
// stdin), and looks at /proc/<pid>: the kernel gives a non-dumpable
// process's /proc entries to root instead of the process's owner. /bin/cat
// under the same conditions is the control.
func TestNonDumpable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test must run as root, to start the programs as nobody")
	}
	dir := binDir(t)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(fifo, 0o666) // past the umask
	tests := []struct {
		name    string
		argv    []string
		wantUID uint32
	}{
		{"control: cat stays dumpable", []string{"/bin/cat", fifo}, nobody},
		{"avalanche-agent", []string{build(t, dir, "."), "check-config", fifo}, 0},
		{"avalanche-decrypt", []string{build(t, dir, "../avalanche-decrypt")}, 0},
		{"avalanche-cloud", []string{build(t, dir, "../avalanche-cloud"), "status", "--token-file", fifo}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := procOwner(t, tt.argv, tt.wantUID); got != tt.wantUID {
				t.Errorf("/proc/<pid> of %s as nobody is owned by uid %d; want %d", tt.argv[0], got, tt.wantUID)
			}
		})
	}
}

// procOwner starts argv as nobody with stdin an open pipe and returns the
// owner of its /proc/<pid>/status. Start returns once the program is
// exec'd (dumpable again after the change of uid); the program may still
// be on its way to main, so this waits (bounded) for the owner to be want.
func procOwner(t *testing.T, argv []string, want uint32) uint32 {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	proc := "/proc/" + strconv.Itoa(cmd.Process.Pid)
	var uid uint32
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		fi, err := os.Stat(proc + "/status")
		if err != nil {
			t.Fatal(err)
		}
		if uid = fi.Sys().(*syscall.Stat_t).Uid; uid == want {
			break
		}
	}
	// A process that exited (a zombie has no memory left) is root's too.
	if stat, err := os.ReadFile(proc + "/stat"); err != nil || strings.Contains(string(stat), ") Z ") {
		t.Fatalf("%s exited instead of waiting for its input: %v\n%s", argv[0], err, stderr.String())
	}
	return uid
}

// binDir is a directory nobody can traverse and run programs from.
func binDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build compiles the main package pkg into dir.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(filepath.Clean(pkg)))
	if pkg == "." {
		out = filepath.Join(dir, "avalanche-agent")
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
