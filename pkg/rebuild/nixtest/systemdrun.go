package nixtest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// callEnd ends each invocation in a FakeSystemdRun log.
const callEnd = "--end-of-call--"

// FakeSystemdRun writes a systemd-run stand-in into dir and returns its path
// and the log it records calls to. It appends its arguments to the log, one
// per line, exports every --setenv=NAME=VALUE, skips its other options and
// execs the command that follows them, so the exit status passes through as
// with `systemd-run --wait`.
func FakeSystemdRun(t testing.TB, dir string) (path, log string) {
	t.Helper()
	path = filepath.Join(dir, "systemd-run")
	log = filepath.Join(dir, "systemd-run.log")
	script := `#!/bin/sh
for arg in "$@"; do printf '%s\n' "$arg" >> '` + log + `'; done
echo '` + callEnd + `' >> '` + log + `'
while [ $# -gt 0 ]; do
  case "$1" in
    --setenv=*) export "${1#--setenv=}" ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
exec "$@"
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, log
}

// SystemdRunCalls returns the argument lists a FakeSystemdRun recorded in log.
func SystemdRunCalls(t testing.TB, log string) [][]string {
	t.Helper()
	b, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var calls [][]string
	var args []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == callEnd {
			calls = append(calls, args)
			args = nil
			continue
		}
		args = append(args, line)
	}
	return calls
}
