package rebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tailLines is how many trailing stderr lines a CommandError keeps.
const tailLines = 20

// killGrace is how long a cancelled command's process group has to exit after
// SIGTERM before it gets SIGKILL. Nix needs the SIGTERM: it puts builders in
// their own session and only kills them when it is allowed to clean up.
const killGrace = 5 * time.Second

// CommandError is a failed external command: what ran, how it ended, and the
// last lines it wrote to stderr.
type CommandError struct {
	Argv     []string
	ExitCode int // -1 when the command was killed or did not start
	Tail     string
	Err      error
}

// Error reads "<argv>: <err>: <tail>", the tail on its own lines when it has several.
func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", shellJoin(e.Argv), e.Err)
	switch {
	case e.Tail == "":
		return msg
	case strings.Contains(e.Tail, "\n"):
		return msg + "; stderr:\n" + e.Tail
	default:
		return msg + ": " + e.Tail
	}
}

// Unwrap returns the underlying error (an *exec.ExitError or a context error).
func (e *CommandError) Unwrap() error { return e.Err }

// command is one external program to run.
type command struct {
	argv   []string
	env    []string  // nil: inherit
	stdout io.Writer // nil: discard
	stderr io.Writer // optional sink besides the tail
}

// run starts c in its own process group. Cancelling ctx sends SIGTERM to the
// whole group, then SIGKILL after killGrace.
func (c command) run(ctx context.Context) error {
	tail := &tailWriter{}
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = c.env
	cmd.Stdout = c.stdout
	cmd.Stderr = tail
	if c.stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, c.stderr)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var (
		mu     sync.Mutex
		killer *time.Timer
	)
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		mu.Lock()
		killer = time.AfterFunc(killGrace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		mu.Unlock()
		return nil
	}
	cmd.WaitDelay = killGrace + time.Second
	err := cmd.Run()
	mu.Lock()
	if killer != nil {
		killer.Stop()
		// Whatever ignored SIGTERM and outlived the leader goes now.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	mu.Unlock()
	if err == nil && ctx.Err() == nil {
		return nil
	}
	return c.error(ctx, err, tail.String())
}

// error builds the CommandError for a run that ended with err.
func (c command) error(ctx context.Context, err error, tail string) *CommandError {
	e := &CommandError{Argv: c.argv, ExitCode: -1, Tail: tail, Err: err}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		e.ExitCode = exit.ExitCode()
	}
	if ctx.Err() != nil {
		if err == nil {
			e.Err = ctx.Err()
		} else {
			e.Err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}
	return e
}

// tailWriter keeps the last tailLines lines written to it, without colours.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

// maxTailBytes bounds the memory a chatty build log can take.
const maxTailBytes = 16 << 10

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 2*maxTailBytes {
		w.buf = append([]byte(nil), w.buf[len(w.buf)-maxTailBytes:]...)
	}
	return len(p), nil
}

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

// String returns the kept lines, trailing blank lines dropped.
func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := bytes.TrimRight(w.buf, "\r\n\t ")
	if len(b) > maxTailBytes {
		b = b[len(b)-maxTailBytes:]
	}
	lines := strings.Split(ansiEscape.ReplaceAllString(string(b), ""), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}

// shellJoin quotes argv the way a person would type it into a shell.
func shellJoin(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

// shellQuote returns s unchanged when the shell would read it literally, else single-quoted.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
