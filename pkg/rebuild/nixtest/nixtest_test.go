package nixtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// TestSecretsManifest builds a system whose manifest names a secret file of
// the flake: the file must land in the store on its own, and the manifest
// must carry its store path.
func TestSecretsManifest(t *testing.T) {
	nixtest.Require(t)
	n := &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(t)}
	repo := nixtest.NewRepo(t, "main")
	const secret = "password: ENC[AES256_GCM,data:abc]\n"
	opts := nixtest.FlakeOptions{
		Name:            "eagle.home",
		Marker:          t.Name() + t.TempDir(),
		Files:           map[string]string{"secrets/nixos/eagle/forgejo.yaml": secret},
		SecretsManifest: `{"secrets":[{"name":"forgejo","sopsFile":"${./secrets/nixos/eagle/forgejo.yaml}","mode":"0400"}]}`,
	}
	sha := repo.WriteFlake(t, opts, "secrets")
	ev, err := n.Evaluate(context.Background(), rebuild.FlakeRef(repo.Bare, "main", sha), opts.Name)
	if err != nil {
		t.Fatalf("Evaluate = %v", err)
	}
	out, err := n.Build(context.Background(), ev, filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "etc/avalanche-agent/secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Secrets []struct{ Name, SopsFile, Mode string }
	}
	if err := json.Unmarshal(b, &manifest); err != nil || len(manifest.Secrets) != 1 {
		t.Fatalf("secrets.json = %s, %v; want one secret", b, err)
	}
	file := manifest.Secrets[0].SopsFile
	got, err := os.ReadFile(file)
	if !strings.HasPrefix(file, "/nix/store/") || !strings.HasSuffix(file, "-forgejo.yaml") || string(got) != secret {
		t.Errorf("secret file %q = %q, %v; want a store copy of forgejo.yaml", file, got, err)
	}
}

func TestFakeSystemdRun(t *testing.T) {
	dir := t.TempDir()
	fake, log := nixtest.FakeSystemdRun(t, dir)
	outFile := filepath.Join(dir, "env")
	script := filepath.Join(dir, "cmd")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$FOO $1\" > "+outFile+"\nexit 4\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--unit=x", "--wait", "--setenv=FOO=bar baz", script, "switch"}
	err := exec.Command(fake, args...).Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 4 {
		t.Errorf("fake systemd-run = %v; want exit status 4 (the command's)", err)
	}
	if got, _ := os.ReadFile(outFile); string(got) != "bar baz switch\n" {
		t.Errorf("command saw %q; want %q", got, "bar baz switch\n")
	}
	calls := nixtest.SystemdRunCalls(t, log)
	if len(calls) != 1 || strings.Join(calls[0], "|") != strings.Join(args, "|") {
		t.Errorf("SystemdRunCalls = %q; want [%q]", calls, args)
	}
}

// TestFakeSystemd: the unit outlives a killed client, is-active follows it,
// stop ends it, and RuntimeMaxSec kills it.
func TestFakeSystemd(t *testing.T) {
	dir := t.TempDir()
	env, _ := nixtest.FakeSystemd(t, dir)
	bin := func(name string) string { return filepath.Join(dir, "bin", name) }
	run := func(args ...string) (*exec.Cmd, error) {
		c := exec.Command(bin(args[0]), args[1:]...)
		c.Env = append(os.Environ(), env...)
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return c, c.Start()
	}
	active := func(unit string) bool {
		c := exec.Command(bin("systemctl"), "is-active", unit)
		c.Env = append(os.Environ(), env...)
		out, _ := c.Output()
		return strings.TrimSpace(string(out)) == "active"
	}
	done := filepath.Join(dir, "done")
	c, err := run("systemd-run", "--unit=u1", "--wait", "/bin/sh", "-c", "sleep 0.5; touch "+done)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !active("u1"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("unit u1 never became active")
		}
	}
	syscall.Kill(-c.Process.Pid, syscall.SIGKILL) // the client dies, as with the agent
	c.Wait()
	for deadline := time.Now().Add(5 * time.Second); active("u1"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("unit u1 never ended")
		}
	}
	if _, err := os.Stat(done); err != nil {
		t.Errorf("the unit did not finish after its client was killed: %v", err)
	}

	c, _ = run("systemd-run", "--unit=u2", "--wait", "--property=RuntimeMaxSec=1", "/bin/sleep", "30")
	start := time.Now()
	if err := c.Wait(); err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("systemd-run of a unit past RuntimeMaxSec = %v after %v; want a failure after about 1s", err, time.Since(start))
	}

	c, _ = run("systemd-run", "--unit=u3", "--wait", "/bin/sleep", "30")
	for deadline := time.Now().Add(5 * time.Second); !active("u3"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("unit u3 never became active")
		}
	}
	stop := exec.Command(bin("systemctl"), "stop", "u3")
	stop.Env = append(os.Environ(), env...)
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("systemctl stop u3: %v %s", err, out)
	}
	if err := c.Wait(); err == nil || active("u3") {
		t.Errorf("after stop: client = %v, active %v; want a failed client and an inactive unit", err, active("u3"))
	}
}

// TestEvaluations tells the calls that evaluate or build from those that
// only move profiles or substitute.
func TestEvaluations(t *testing.T) {
	calls := [][]string{
		{"nix", "eval", "--json", "git+file:///r#nixosConfigurations.a.config.system.build.toplevel"},
		{"nix-store", "--realise", "/nix/store/x-a.drv", "--add-root", "/r"},
		{"nix-env", "-p", "/nix/var/nix/profiles/system", "-i", "/nix/store/x-a"},
		{"nix-instantiate", "--eval", "-E", "1"},
		{"nix-store", "--realise", "/nix/store/x-a"},
		{"nix-env", "-p", "/nix/var/nix/profiles/system", "--set", "/nix/store/x-a"},
		{"nix-env", "-p", "/nix/var/nix/profiles/system", "--switch-generation", "3"},
		{"nix", "path-info", "--json", "--store", "http://cache", "/nix/store/x-a"},
	}
	got := nixtest.Evaluations(calls)
	if len(got) != 4 || got[3][0] != "nix-instantiate" {
		t.Errorf("Evaluations = %q; want the first four calls", got)
	}
}
