package nixtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
