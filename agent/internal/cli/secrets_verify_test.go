package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// checkHost is a host that fetched a repository with signed and unsigned
// commits, deployed main at `deployed`, and has a `nix` on PATH that only
// records that it ran.
type checkHost struct {
	cfgPath string
	nixRan  string // the fake nix creates this file
	commits map[string]string
}

func newCheckHost(t *testing.T, signed bool) *checkHost {
	t.Helper()
	dir := t.TempDir()
	w := gittest.NewRepo(t)
	key, pub := gittest.NewSSHKey(t, dir, "admin")
	other, _ := gittest.NewSSHKey(t, dir, "stranger")
	f := map[string]string{"flake.nix": "{ outputs = _: { }; }"}
	h := &checkHost{nixRan: filepath.Join(dir, "nix-ran"), commits: map[string]string{}}
	h.commits["older"] = w.CommitSSHSigned(t, f, "older", key)
	h.commits["deployed"] = w.CommitSSHSigned(t, f, "deployed", key)
	h.commits["unsigned"] = w.Commit(t, f, "unsigned")
	h.commits["stranger"] = w.CommitSSHSigned(t, f, "signed by a stranger", other)
	h.commits["good"] = w.CommitSSHSigned(t, f, "good", key)
	// The testing branch was rewritten from the older commit: fetched, but
	// not on top of what was deployed.
	w.Git(t, "checkout", "-q", "-b", "testing/checkhost", h.commits["older"])
	h.commits["rewritten"] = w.CommitSSHSigned(t, f, "rewritten history", key)

	c := map[string]any{
		"version": 1, "hostname": "checkhost", "repository": map[string]any{"url": w.Dir},
		"stateDir": filepath.Join(dir, "state"), "runtimeDir": filepath.Join(dir, "run"),
		"secrets": map[string]any{"ageKeyFiles": []string{secretstest.NewAgeKey(t).File}},
	}
	if signed {
		c["verify"] = map[string]any{"allowedSignersFile": writeFile(t, dir, "allowed_signers", gittest.AllowedSigner("admin", pub)+"\n")}
	}
	b, _ := json.Marshal(c)
	h.cfgPath = writeFile(t, dir, "config.json", string(b))
	cfg, err := config.Load(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRepo(cfg).Fetch(context.Background()); err != nil {
		t.Fatalf("fetching: %v", err)
	}
	if err := state.Save(cfg.StatePath(), &state.State{LastMain: h.commits["deployed"]}); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	writeFile(t, bin, "nix", "#!/bin/sh\ntouch "+h.nixRan+"\necho 'fake nix: not building' >&2\nexit 1\n")
	os.Chmod(filepath.Join(bin, "nix"), 0o755)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return h
}

// check runs `secrets check --commit` and reports whether nix ran.
func (h *checkHost) check(t *testing.T, commit string) (nixRan bool, err error) {
	t.Helper()
	os.Remove(h.nixRan)
	_, _, err = run(t, "secrets", "check", "--config", h.cfgPath, "--commit", commit)
	_, statErr := os.Stat(h.nixRan)
	return !errors.Is(statErr, os.ErrNotExist), err
}

// TestSecretsCheckVerifiesTheCommitFirst: `secrets check --commit` builds a
// commit as root, so it takes only what a deployment would take, and runs
// no nix command for anything else.
func TestSecretsCheckVerifiesTheCommitFirst(t *testing.T) {
	h := newCheckHost(t, true)
	tests := []struct {
		name    string
		commit  string
		want    string // in the error
		wantNix bool
	}{
		{"older than the deployed commit", h.commits["older"], "does not descend from " + h.commits["deployed"], false},
		{"rewritten history", h.commits["rewritten"], "an older commit or a rewritten history", false},
		{"unsigned", h.commits["unsigned"], "commit is not signed", false},
		{"signed by a stranger", h.commits["stranger"], "bad signature", false},
		{"not fetched", strings.Repeat("ab", 20), "is it fetched?", false},
		{"short hash", h.commits["good"][:12], "give the full 40-hex commit hash", false},
		{"signed, on top of the deployed commit", h.commits["good"], "fake nix: not building", true},
		{"the deployed commit itself", h.commits["deployed"], "fake nix: not building", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nixRan, err := h.check(t, tt.commit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("secrets check --commit %s = %v; want an error containing %q", tt.commit, err, tt.want)
			}
			if nixRan != tt.wantNix {
				t.Errorf("nix ran = %v; want %v", nixRan, tt.wantNix)
			}
		})
	}
}

// TestSecretsCheckWithoutSigners: with no signers configured, ancestry
// still counts and an unsigned commit on top is taken.
func TestSecretsCheckWithoutSigners(t *testing.T) {
	h := newCheckHost(t, false)
	if nixRan, err := h.check(t, h.commits["unsigned"]); !nixRan {
		t.Errorf("secrets check of an unsigned commit without signers = %v; want it built", err)
	}
	if nixRan, err := h.check(t, h.commits["older"]); nixRan || err == nil || !strings.Contains(err.Error(), "does not descend") {
		t.Errorf("secrets check of an older commit = %v, nix ran %v; want refused before nix", err, nixRan)
	}
}
