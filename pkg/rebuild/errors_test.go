package rebuild_test

import (
	"context"
	"errors"
	"fmt"
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
