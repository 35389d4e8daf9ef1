package rebuild_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

func TestIsTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"daemon down", cmdErr(1, "error: cannot connect to daemon at '/nix/var/nix/daemon-socket/socket': Connection refused"), true},
		{"locked database", cmdErr(1, "error: SQLite database '/nix/var/nix/db/db.sqlite' is busy\nerror: database is locked"), true},
		{"input fetch", cmdErr(1, "error:\n       … while fetching the input 'github:NixOS/nixpkgs'\n\n       error: unable to download 'https://github.com/x': Couldn't resolve host name (6)"), true},
		{"git fetch", cmdErr(1, "fatal: unable to access 'https://git.example/': Could not resolve host: git.example"), true},
		{"disk full", cmdErr(1, "error: writing to file: No space left on device"), true},
		{"wrapped", fmt.Errorf("evaluating: %w", rebuild.ErrTransient), true},
		{"no remote builder (Nix 2.8)", cmdErr(1, "error: a 'aarch64-linux' with features {} is required to build '/nix/store/x.drv', but I am a 'x86_64-linux' with features {benchmark, big-parallel}"), true},
		{"no remote builder (later Nix)", cmdErr(1, "error: Cannot build '/nix/store/x.drv'.\n       Reason: required system or feature not available\n       Required system: 'aarch64-linux' with features {}"), true},
		{"no remote builder, build exit code", cmdErr(100, "error: a 'aarch64-linux' with features {} is required to build '/nix/store/x.drv', but I am a 'x86_64-linux' with features {}"), true},
		{"eval error", cmdErr(1, "error: eagle: services.forgejo needs a domain"), false},
		{"only a warning", cmdErr(1, "warning: error: unable to download 'https://cache.nixos.org/nix-cache-info': Couldn't resolve host name (6)\nerror: attribute 'eagle' missing"), false},
		{"build failure with network words", cmdErr(100, "error: unable to download 'https://x': HTTP error 503"), false},
		{"builder log line", cmdErr(1, "> curl: Could not resolve host: example.com\nerror: builder for '/nix/store/x.drv' failed with exit code 6"), false},
		{"cancelled", fmt.Errorf("building: %w", context.Canceled), false},
		{"not a command", errors.New("error: database is locked"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := rebuild.IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%s: %v) = %v; want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func cmdErr(code int, tail string) error {
	return &rebuild.CommandError{Argv: []string{"nix", "eval"}, ExitCode: code, Tail: tail, Err: fmt.Errorf("exit status %d", code)}
}

func TestCommandError(t *testing.T) {
	exit := errors.New("exit status 1")
	tests := []struct {
		err  *rebuild.CommandError
		want string
	}{
		{&rebuild.CommandError{Argv: []string{"nix-store", "--realise", "/nix/store/x.drv"}, Err: exit},
			"nix-store --realise /nix/store/x.drv: exit status 1"},
		{&rebuild.CommandError{Argv: []string{"nix", "--option", "substituters", ""}, Err: exit, Tail: "error: boom"},
			"nix --option substituters '': exit status 1: error: boom"},
		{&rebuild.CommandError{Argv: []string{"nix-env", "-p", "/p"}, Err: exit, Tail: "line 1\nline 2"},
			"nix-env -p /p: exit status 1; stderr:\nline 1\nline 2"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("CommandError.Error() = %q; want %q", got, tt.want)
		}
		if !errors.Is(tt.err, exit) {
			t.Errorf("errors.Is(%v, %v) = false; want true", tt.err, exit)
		}
	}
}

// TestOutOfMemoryIsNotTheCommits: an evaluation killed by SIGKILL that
// nobody here sent (the kernel's OOM killer), one that exits 137, and
// one whose Nix reports running out of memory are rebuild.ErrOutOfMemory
// (wrapping syscall.ENOMEM: the machine's trouble), never ErrEval.
func TestOutOfMemoryIsNotTheCommits(t *testing.T) {
	tests := []struct{ name, script string }{
		{"killed by SIGKILL", "kill -9 $$"},
		{"exit 137", "exit 137"},
		{"nix out of memory", "echo 'error: out of memory' >&2; exit 1"},
		{"std::bad_alloc", "echo 'error: std::bad_alloc' >&2; exit 1"},
		{"build step killed", "echo \"error: builder for '/nix/store/x.drv' failed due to signal 9 (Killed)\" >&2; exit 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "nix"), []byte("#!/bin/sh\n"+tt.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			n := &rebuild.Nix{BinDir: dir}
			_, err := n.Evaluate(context.Background(), "path:/nonexistent", "host")
			if !errors.Is(err, rebuild.ErrOutOfMemory) || !errors.Is(err, syscall.ENOMEM) || errors.Is(err, rebuild.ErrEval) {
				t.Fatalf("Evaluate = %v; want ErrOutOfMemory (ENOMEM), not ErrEval", err)
			}
		})
	}
}
