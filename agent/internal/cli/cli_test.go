package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// run drives the CLI in-process.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Args: args}
	err = m.Execute(context.Background())
	return out.String(), errb.String(), err
}

func writeFile(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckConfigListsEveryProblem(t *testing.T) {
	p := writeFile(t, t.TempDir(), "bad.json", `{"version":3,"hostname":"a b","repository":{"url":"ftp://x/y"},"deploy":{"action":"jump"},"oops":true,"pollInterval":"soon"}`)
	_, stderr, err := run(t, "check-config", p)
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Fatalf("check-config(bad) = %v; want exit 1", err)
	}
	want := p + ` is invalid:
  - deploy.action: "jump" is not one of switch, boot, test
  - flakeOutput: "a b" is not a flake attribute name (want e.g. the host name)
  - hostname: "a b" is not a host name (want letters, digits and '-', at most 63)
  - oops: unknown key (see docs/config.md for the keys)
  - pollInterval: "soon" is not a duration (want e.g. "60s", "5m")
  - repository.testingBranch: "testing/a b" is not a branch name (want e.g. "main", without refs/heads/)
  - repository.url: "ftp://x/y" has scheme "ftp" (want an https://, ssh:// or file:// URL, user@host:path or an absolute path)
  - version: 3 is not supported (want 1)
`
	if diff := cmp.Diff(want, stderr); diff != "" {
		t.Errorf("check-config stderr mismatch (-want +got):\n%s", diff)
	}
	good := writeFile(t, t.TempDir(), "good.json", `{"version":1,"hostname":"eagle","repository":{"url":"https://git.example/a.git"}}`)
	out, _, err := run(t, "check-config", good)
	if err != nil || !strings.Contains(out, "is valid") {
		t.Errorf("check-config(good) = %q, %v; want valid", out, err)
	}
}

func TestStatusWhenDaemonIsDown(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.json", `{"version":1,"hostname":"possum","repository":{"url":"/srv/avalanche"},
  "stateDir":"`+dir+`/state","runtimeDir":"`+dir+`/run"}`)
	os.MkdirAll(filepath.Join(dir, "state"), 0o700)
	st := &state.State{Deployed: &state.Deployment{Commit: "0123456789abcdef0123", Branch: "main", Result: "deployed",
		StorePath: "/nix/store/abc-nixos-system-possum", Generation: 7, Time: time.Now().Add(-time.Hour)},
		LastError: &state.Failure{Phase: "build", Commit: "fedcba9876543210", Message: "building: exit status 1", Time: time.Now()}}
	if err := state.Save(filepath.Join(dir, "state", "state.json"), st); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "status", "--config", cfg)
	if err != nil {
		t.Fatalf("status = %v", err)
	}
	for _, want := range []string{"DAEMON NOT RUNNING", "0123456789ab on main", "generation 7", "build failed for fedcba987654"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, "status", "--json", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"hostname", "state", "fetched", "deployed", "lastError", "daemonRunning"} {
		if _, ok := s[k]; !ok {
			t.Errorf("status --json lacks %q", k)
		}
	}
	if s["daemonRunning"] != false || s["state"] != "failed" {
		t.Errorf("status --json daemonRunning/state = %v/%v; want false/failed", s["daemonRunning"], s["state"])
	}
}

func TestClientCommandsWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.json", `{"version":1,"hostname":"possum","repository":{"url":"/srv/avalanche"},"stateDir":"`+dir+`","runtimeDir":"`+dir+`"}`)
	_, _, err := run(t, "sync", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "daemon is not running") {
		t.Errorf("sync without daemon = %v; want 'daemon is not running'", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	_, stderr, err := run(t, "frobnicate")
	if !errors.Is(err, ErrUsage) || !strings.Contains(stderr, "unknown command") {
		t.Errorf("frobnicate = %v, %q; want usage error", err, stderr)
	}
}

func TestWriteStatusShowsTheEndOfAFailedBuild(t *testing.T) {
	var buf bytes.Buffer
	s := status.Status{Hostname: "raccoon03", FlakeOutput: "raccoon03", State: "failed", DaemonRunning: true,
		LastError: "build failed for 0123456789ab: building abc-nixos-system-raccoon03: exit status 100; stderr:\n" +
			"this derivation will be built:\n  /nix/store/abc.drv\nbuilding '/nix/store/abc.drv'...\n" +
			"error: undefined variable 'pkgs'\nerror: builder for '/nix/store/abc.drv' failed with exit code 1\n"}
	if err := WriteStatus(&buf, s, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"last error  build failed for 0123456789ab", "error: undefined variable 'pkgs'", "failed with exit code 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "this derivation will be built") {
		t.Errorf("status output shows the start of the build log; want only its end:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n > 12 {
		t.Errorf("status output is %d lines; want one screen at a glance:\n%s", n, out)
	}
}

// TestWriteStatusShowsDriftAndInterruptions: what runs when it is not what
// was deployed, why that probably is, and a deployment a stop cut short,
// in plain words.
func TestWriteStatusShowsDriftAndInterruptions(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	s := status.Status{Hostname: "raccoon03", FlakeOutput: "raccoon03", State: "idle", DaemonRunning: true,
		Deployed: &state.Deployment{Commit: "0123456789abcdef", Branch: "main", Result: "deployed", StorePath: "/nix/store/aaa-nixos-system-raccoon03", Time: now.Add(-time.Hour)},
		Drift: &state.Drift{Running: "/nix/store/bbb-nixos-system-raccoon03", Expected: "/nix/store/aaa-nixos-system-raccoon03",
			Commit: "0123456789abcdef", Since: now.Add(-10 * time.Minute),
			Cause: "a hand-run rebuild (nixos-rebuild switch) made profile generation 7", Repair: "report only (deploy.repairDrift is off)"},
		Interrupted: &state.Interruption{Commit: "fedcba9876543210", Step: "build", Time: now.Add(-5 * time.Minute),
			Resolution: "nothing had changed on the host; the commit will be tried again"},
	}
	var buf bytes.Buffer
	if err := WriteStatus(&buf, s, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"DRIFT", "runs /nix/store/bbb-nixos-system-raccoon03 since", "10m0s ago, not the deployed 0123456789ab",
		"likely cause: a hand-run rebuild (nixos-rebuild switch) made profile generation 7; report only",
		"interrupted", "fedcba987654 at build (", "5m0s ago): nothing had changed on the host",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, buf.String())
		}
	}

	// A stopped agent with a deployment its journal left open.
	s = status.Status{Hostname: "raccoon03", FlakeOutput: "raccoon03", State: "recovering",
		Flight: &status.Flight{ID: 7, Commit: "fedcba9876543210", Reason: "commit", Step: "activate", Event: "intent", Started: now.Add(-time.Minute)}}
	buf.Reset()
	WriteStatus(&buf, s, now)
	if want := "deploying fedcba987654, stopped at activate (intent); the next start finishes or undoes it"; !strings.Contains(buf.String(), want) {
		t.Errorf("status output lacks %q:\n%s", want, buf.String())
	}
}
