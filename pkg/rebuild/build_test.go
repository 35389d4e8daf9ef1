package rebuild_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestBuild(t *testing.T) {
	n := newNix(t)
	var log bytes.Buffer
	n.Stderr = &log
	repo := nixtest.NewRepo(t, "main")
	s := commitSystem(t, n, repo, nixtest.FlakeOptions{Marker: t.Name() + time.Now().String()})
	root := filepath.Join(t.TempDir(), "gcroots", "system-1")

	out, err := n.Build(context.Background(), s.ev, root)
	if err != nil || out != s.ev.OutPath {
		t.Fatalf("Build(%v) = %q, %v; want %q", s.ev, out, err, s.ev.OutPath)
	}
	if !exists(filepath.Join(out, "bin", "switch-to-configuration")) {
		t.Errorf("Build(%v) produced no bin/switch-to-configuration", s.ev)
	}
	if target, err := os.Readlink(root); err != nil || target != out {
		t.Errorf("gc root %s -> %q, %v; want -> %q", root, target, err, out)
	}
	if !registeredRoot(t, root) {
		t.Errorf("gc root %s is not registered in /nix/var/nix/gcroots/auto", root)
	}
	if !strings.Contains(log.String(), "avalanche-test: building") {
		t.Errorf("Stderr got %q; want the build log", log.String())
	}
}

// registeredRoot reports whether Nix's auto roots point at root.
func registeredRoot(t *testing.T, root string) bool {
	t.Helper()
	dir := "/nix/var/nix/gcroots/auto"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, _ := os.Readlink(filepath.Join(dir, e.Name())); target == root {
			return true
		}
	}
	return false
}

func TestBuildError(t *testing.T) {
	n := newNix(t)
	var log bytes.Buffer
	n.Stderr = &log
	repo := nixtest.NewRepo(t, "main")
	s := commitSystem(t, n, repo, nixtest.FlakeOptions{BuildFail: true, Marker: time.Now().String()})

	_, err := n.Build(context.Background(), s.ev, filepath.Join(t.TempDir(), "root"))
	if !errors.Is(err, rebuild.ErrBuild) || rebuild.IsTransient(err) {
		t.Fatalf("Build(%v) = %v; want ErrBuild, not transient", s.ev, err)
	}
	var ce *rebuild.CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Tail, nixtest.BuildFailMessage) {
		t.Errorf("Build(%v) = %v; want a CommandError whose tail has %q", s.ev, err, nixtest.BuildFailMessage)
	}
	if !strings.Contains(log.String(), nixtest.BuildFailMessage) {
		t.Errorf("Stderr got %q; want the build log", log.String())
	}
}

// TestBuildCancel stops a sleeping build: Build must return promptly with
// the context's error and leave no builder behind.
func TestBuildCancel(t *testing.T) {
	n := newNix(t)
	tests := []struct {
		name    string
		timeout time.Duration // 0: cancel once the builder runs
		want    error
	}{
		{"cancel", 0, context.Canceled},
		{"timeout", 2500 * time.Millisecond, context.DeadlineExceeded},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A sleep length no other process uses lets the test find the builder.
			sleep := 40*time.Second + time.Duration(time.Now().UnixNano()%1000+int64(i))*time.Millisecond
			sleepArg := fmt.Sprintf("%.3f", sleep.Seconds())
			s := commitSystem(t, n, nixtest.NewRepo(t, "main"), nixtest.FlakeOptions{BuildSleep: sleep})

			ctx, cancel := context.WithCancel(context.Background())
			if tt.timeout > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tt.timeout)
			}
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := n.Build(ctx, s.ev, filepath.Join(t.TempDir(), "root"))
				done <- err
			}()
			waitFor(t, func() bool { return len(processesWith(sleepArg)) > 0 }, tt.timeout+10*time.Second)

			stopped := time.Now()
			if tt.timeout > 0 {
				stopped, _ = ctx.Deadline()
			} else {
				cancel()
			}
			err := <-done
			if took := time.Since(stopped); took > 2*time.Second {
				t.Errorf("Build returned %v after the %s; want < 2s", took, tt.name)
			}
			if !errors.Is(err, tt.want) || errors.Is(err, rebuild.ErrBuild) || rebuild.IsTransient(err) {
				t.Errorf("Build after %s = %v; want %v and no failure class", tt.name, err, tt.want)
			}
			// The builder gets the signal as Build returns; give the kernel
			// a moment to reap it, but not the 40 s it would sleep.
			deadline := time.Now().Add(3 * time.Second)
			for len(processesWith(sleepArg)) > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if left := processesWith(sleepArg); len(left) > 0 {
				t.Errorf("after %s, processes left: %v", tt.name, left)
			}
		})
	}
}

// processesWith returns the command lines of running processes that have arg.
func processesWith(arg string) []string {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for _, a := range args {
			if a == arg {
				found = append(found, strings.Join(args, " "))
				break
			}
		}
	}
	return found
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, cond func() bool, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
	}
}

func TestPruneGCRoots(t *testing.T) {
	tests := []struct {
		keep   int
		pinned []string
		want   []string
	}{
		{0, nil, nil},
		{1, nil, []string{"flight-12-a"}},
		{2, nil, []string{"flight-12-a", "flight-9-b"}},
		{5, nil, []string{"flight-12-a", "flight-2-d", "flight-9-b"}},
		{-1, nil, nil},
		// Pinned roots stay whatever their age or name; they do not count
		// against keep.
		{1, []string{"/nix/store/d", "/nix/store/legacy"}, []string{"flight-12-a", "flight-2-d", "system-1700000000-old"}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		// The modification times say the opposite of the sequence numbers,
		// as after a clock jump: only the numbers may count.
		base := time.Now().Add(-time.Hour)
		for i, name := range []string{"flight-12-a", "flight-9-b", "flight-2-d", "system-1700000000-old"} {
			p := filepath.Join(dir, name)
			target := "/nix/store/" + name[len(name)-1:]
			if name == "system-1700000000-old" {
				target = "/nix/store/legacy"
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			mtime := unix.NsecToTimespec(base.Add(time.Duration(-i) * 24 * time.Hour * 365 * 40).UnixNano())
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{mtime, mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "zz-not-a-root"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := rebuild.PruneGCRoots(dir, tt.keep, tt.pinned...); err != nil {
			t.Fatalf("PruneGCRoots(%d, %q) = %v", tt.keep, tt.pinned, err)
		}
		var got []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != "zz-not-a-root" {
				got = append(got, e.Name())
			}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" || !exists(filepath.Join(dir, "zz-not-a-root")) {
			t.Errorf("PruneGCRoots(%d, %q) left %v (-want +got):\n%s", tt.keep, tt.pinned, got, diff)
		}
	}
	if err := rebuild.PruneGCRoots(filepath.Join(t.TempDir(), "missing"), 1); err != nil {
		t.Errorf("PruneGCRoots(missing dir) = %v; want nil", err)
	}
}
