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

// FakeSystemd writes stand-ins for systemd-run and systemctl into dir/bin
// that behave like systemd's transient units where it matters for the
// agent: `systemd-run --unit=U --wait … CMD` starts CMD as unit U in a
// session of its own (killing the systemd-run client, or the agent that
// started it, leaves the unit running, as under systemd), waits for it and
// exits with its status; --property=RuntimeMaxSec=N kills the unit after N
// seconds; `systemctl is-active U` answers active while it runs;
// `systemctl stop U` kills it. Other systemctl verbs are logged and
// succeed. It returns the environment that puts them first on PATH and
// the log both append their arguments to, one call per line.
func FakeSystemd(t testing.TB, dir string) (env []string, log string) {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	units := filepath.Join(dir, "units")
	for _, d := range []string{bin, units} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log = filepath.Join(dir, "systemd.log")
	run := `#!/bin/sh
echo "systemd-run $*" >> '` + log + `'
unit= max= wait=
while [ $# -gt 0 ]; do
  case "$1" in
    --unit=*) unit="${1#--unit=}" ;;
    --setenv=*) export "${1#--setenv=}" ;;
    --property=RuntimeMaxSec=*) max="${1#--property=RuntimeMaxSec=}" ;;
    --wait) wait=1 ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
u='` + units + `'/"$unit"
rm -f "$u.result"
if [ -n "$max" ]; then set -- timeout -s KILL "$max" "$@"; fi
setsid /bin/sh -c 'echo $$ > "$0.pid"; "$@"; echo $? > "$0.result"; rm -f "$0.pid"' "$u" "$@" < /dev/null >> '` + log + `' 2>&1 &
while [ ! -e "$u.pid" ] && [ ! -e "$u.result" ]; do sleep 0.01; done
[ -z "$wait" ] && exit 0
while [ ! -e "$u.result" ]; do
  # A unit killed from outside (a power cut) never writes its result.
  p=$(cat "$u.pid" 2>/dev/null)
  if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null && [ ! -e "$u.result" ]; then echo 137 > "$u.result"; fi
  sleep 0.02
done
while [ -e "$u.pid" ] && kill -0 "$(cat "$u.pid" 2>/dev/null)" 2>/dev/null; do sleep 0.01; done
rc=$(cat "$u.result")
if [ "$rc" != 0 ]; then echo "Job for $unit failed (exit status $rc)" >&2; fi
exit "$rc"
`
	ctl := `#!/bin/sh
echo "systemctl $*" >> '` + log + `'
u='` + units + `'/"$2"
running() { [ -e "$u.pid" ] && kill -0 "$(cat "$u.pid" 2>/dev/null)" 2>/dev/null; }
case "$1" in
  is-active) if running; then echo active; exit 0; fi; echo inactive; exit 3 ;;
  stop)
    if running; then /bin/kill -s KILL -- "-$(cat "$u.pid")"; fi
    while running; do sleep 0.01; done
    rm -f "$u.pid"
    [ -e "$u.result" ] || echo 137 > "$u.result"
    exit 0 ;;
esac
exit 0
`
	for name, script := range map[string]string{"systemd-run": run, "systemctl": ctl} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, log
}
