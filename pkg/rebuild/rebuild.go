// Package rebuild does what `nixos-rebuild <action> --flake <repo>#<output>`
// does, one step at a time so a daemon can schedule, time out, pre-empt and
// classify each: evaluate the system toplevel, build it under a GC root, set
// the system profile and run switch-to-configuration (optionally in a
// transient systemd unit that survives the caller's restart), and tell
// whether the running kernel is stale. It never logs: build output goes to
// Nix.Stderr when set, and every command error carries its argv and stderr tail.
//
// Only commands and flags that Nix 2.8 and current Nix share are used.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Failure classes. Errors returned by this package wrap at most one of them.
// An evaluation or build ended by ctx (cancellation, timeout) wraps none and
// keeps context.Canceled or context.DeadlineExceeded in its chain instead;
// an activation always wraps ErrActivate.
var (
	// ErrEval marks an evaluation failure that is a property of the commit.
	ErrEval = errors.New("evaluation error")
	// ErrBuild marks a build failure that is a property of the commit.
	ErrBuild = errors.New("build error")
	// ErrActivate marks a failure to set the profile or to switch.
	ErrActivate = errors.New("activation error")
	// ErrTransient marks an eval or build failure caused by the machine or
	// the network (daemon down, locked database, unreachable substituter);
	// trying the same commit again later may succeed.
	ErrTransient = errors.New("transient nix error")
)

// experimentalFeatures is passed to every nix command; nix-store and nix-env accept it too.
var experimentalFeatures = []string{"--extra-experimental-features", "nix-command flakes"}

// Nix runs nix commands. Its zero value uses the nix found in $PATH; it
// holds no state, so one Nix may run several commands at once.
type Nix struct {
	// ExtraArgs is appended to every nix, nix-store and nix-env invocation,
	// e.g. {"--option", "substituters", ""}.
	ExtraArgs []string
	// Env is added to os.Environ() for nix commands (e.g. NIX_PATH, XDG_CACHE_HOME).
	Env []string
	// Stderr, when set, receives the stderr of nix commands: traces and build logs.
	Stderr io.Writer
	// BinDir is the directory holding nix, nix-store and nix-env; empty means $PATH.
	BinDir string
}

// nixCommand returns a command running the nix program prog with args.
func (n *Nix) nixCommand(prog string, args ...string) command {
	if n.BinDir != "" {
		prog = filepath.Join(n.BinDir, prog)
	}
	argv := append([]string{prog}, experimentalFeatures...)
	argv = append(argv, n.ExtraArgs...)
	argv = append(argv, args...)
	env := append(os.Environ(), n.Env...)
	c := command{argv: argv, env: env}
	if n.Stderr != nil {
		c.stderr = forgiving{n.Stderr}
	}
	return c
}

// forgiving passes writes on and ignores the sink's errors: a broken log
// sink must not stop the copy of stderr and so kill nix with SIGPIPE.
type forgiving struct{ w io.Writer }

func (f forgiving) Write(p []byte) (int, error) {
	_, _ = f.w.Write(p)
	return len(p), nil
}

// classify wraps a command failure with its class: ctx errors stay as they
// are, transient ones get ErrTransient, everything else gets class.
func classify(class, err error) error {
	switch {
	case ctxErr(err):
		return err
	case IsTransient(err):
		return fmt.Errorf("%w: %w", ErrTransient, err)
	default:
		return fmt.Errorf("%w: %w", class, err)
	}
}

// transientMarks are fragments of nix and git error lines that point at the
// machine or the network rather than at the configuration.
var transientMarks = []string{
	"cannot connect to daemon",
	"cannot connect to socket",
	"database is locked",
	"is busy",
	"unable to download",
	"could not resolve host",
	"couldn't resolve host",
	"temporary failure in name resolution",
	"failed to connect to",
	"connection refused",
	"connection reset",
	"connection timed out",
	"operation timed out",
	"network is unreachable",
	"no route to host",
	"no space left on device",
	"http error 5",
}

// IsTransient reports whether err is worth retrying later for the same
// commit: it wraps ErrTransient, or a CommandError whose stderr error lines
// name a daemon, lock, disk-space or network problem. Nix build failures
// (nix-store exit codes 100-111) are never transient; neither are
// cancellation and timeouts, which the caller recognises through ctx errors.
func IsTransient(err error) bool {
	if errors.Is(err, ErrTransient) {
		return true
	}
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode >= 100 && ce.ExitCode <= 111 {
		return false
	}
	for _, line := range strings.Split(strings.ToLower(ce.Tail), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "error:") && !strings.HasPrefix(line, "fatal:") {
			continue
		}
		for _, m := range transientMarks {
			if strings.Contains(line, m) {
				return true
			}
		}
	}
	return false
}

// ctxErr reports whether err comes from a cancelled or expired context.
func ctxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
