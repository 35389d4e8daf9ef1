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
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	// ErrOutOfMemory marks an eval or build killed for want of memory (the
	// kernel's OOM killer, or Nix's own allocator giving up). It wraps
	// syscall.ENOMEM: the machine's trouble, not the commit's.
	ErrOutOfMemory = fmt.Errorf("out of memory (%w)", syscall.ENOMEM)
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
// are, out-of-memory kills get ErrOutOfMemory, transient ones (including
// no machine able to build for a system) ErrTransient, everything else class.
func classify(class, err error) error {
	switch {
	case ctxErr(err):
		return err
	case outOfMemory(err):
		return fmt.Errorf("%w: %w", ErrOutOfMemory, err)
	case IsTransient(err):
		return fmt.Errorf("%w: %w", ErrTransient, err)
	default:
		return fmt.Errorf("%w: %w", class, err)
	}
}

// oomMarks are fragments of Nix's error lines when its allocator gives up,
// or when the kernel killed a build step ("builder for '…' failed due to
// signal 9 (Killed)": nothing but the OOM killer sends it there).
var oomMarks = []string{"out of memory", "std::bad_alloc", "cannot allocate memory", "failed due to signal 9"}

// outOfMemory reports a command that ran out of memory: killed by SIGKILL
// that nobody here sent (ctx was not cancelled: the kernel's OOM killer),
// exit status 137 (a wrapper reporting the same), or an error line of
// Nix's saying so.
func outOfMemory(err error) bool {
	var ce *CommandError
	if !errors.As(err, &ce) || ctxErr(err) {
		return false
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return ce.ExitCode == 137 || errorLineHas(ce.Tail, oomMarks)
}

// errorLineHas reports whether a line of tail that starts with "error:" or
// "fatal:" contains one of marks (lower case).
func errorLineHas(tail string, marks []string) bool {
	for _, line := range strings.Split(strings.ToLower(tail), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "error:") && !strings.HasPrefix(line, "fatal:") {
			continue
		}
		for _, m := range marks {
			if strings.Contains(line, m) {
				return true
			}
		}
	}
	return false
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
	if !errors.As(err, &ce) {
		return false
	}
	// Whatever the exit status: no machine (local or remote builder) can
	// build for the derivation's system right now.
	if noBuilder(ce.Tail) {
		return true
	}
	if ce.ExitCode >= 100 && ce.ExitCode <= 111 {
		return false
	}
	return errorLineHas(ce.Tail, transientMarks)
}

// noBuilder reports Nix saying that no machine can build for a system:
// "a 'aarch64-linux' with features {} is required to build '…', but I am
// a 'x86_64-linux'" (Nix up to 2.18), or "Reason: required system or
// feature not available" (later Nix), when the remote builders are down.
func noBuilder(tail string) bool {
	t := strings.ToLower(tail)
	return strings.Contains(t, "is required to build") && strings.Contains(t, "but i am a") ||
		strings.Contains(t, "required system or feature not available")
}

// ctxErr reports whether err comes from a cancelled or expired context.
func ctxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
