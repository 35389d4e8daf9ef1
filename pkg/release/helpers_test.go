package release_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// fleet is a fleet repository served over smart HTTP, a builder's and a
// host's local copies of it, and the keys that sign commits and releases.
type fleet struct {
	work    *gittest.WorkRepo
	bare    string
	server  *gittest.HTTPServer
	builder *gitsync.Repo
	host    *gitsync.Repo
	// alice signs commits; the builder key signs releases.
	aliceKey, builderKey string
	allowed              string // allowed_signers file
	signer               *release.Signer
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{work: gittest.NewRepo(t), bare: gittest.NewBare(t)}
	gittest.Require(t, "git")
	keys := t.TempDir()
	var alicePub, builderPub string
	f.aliceKey, alicePub = gittest.NewSSHKey(t, keys, "alice")
	f.builderKey, builderPub = gittest.NewSSHKey(t, keys, "builder")
	f.allowed = writeFile(t, "allowed_signers", gittest.AllowedSigner("alice", alicePub)+"\n"+
		`builder namespaces="`+release.Namespace+`" `+builderPub+"\n")
	var err error
	if f.signer, err = release.LoadSigner(f.builderKey); err != nil {
		t.Fatal(err)
	}
	f.work.Git(t, "-C", f.bare, "config", "http.receivepack", "true")
	f.server = gittest.StartHTTPServer(t, f.bare, "")
	f.builder = f.mirror(t)
	f.host = f.mirror(t)
	return f
}

// mirror returns a local copy tracking main and the release branch, the
// way an agent's Repo.Branches will.
func (f *fleet) mirror(t *testing.T) *gitsync.Repo {
	return &gitsync.Repo{Dir: filepath.Join(t.TempDir(), "repo.git"), Remote: gitsync.Remote{URL: f.server.URL},
		Branches: []string{"main", release.Branch}}
}

// commit makes a signed main commit and pushes it.
func (f *fleet) commit(t *testing.T, msg string) string {
	t.Helper()
	c := f.work.CommitSSHSigned(t, map[string]string{"msg.txt": msg + "\n"}, msg, f.aliceKey)
	f.work.Push(t, f.bare, "HEAD:refs/heads/main")
	return c
}

// publish has the builder fetch, commit rel signed by s and push it.
func (f *fleet) publish(t *testing.T, rel release.Release, s *release.Signer) string {
	t.Helper()
	ctx := context.Background()
	if _, err := f.builder.Fetch(ctx); err != nil {
		t.Fatalf("builder Fetch = %v", err)
	}
	old, c, err := release.Commit(f.builder.Dir, "", rel, s)
	if err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if err := f.builder.Push(ctx, release.Branch, old, c); err != nil {
		t.Fatalf("Push = %v", err)
	}
	return c
}

// find has the host fetch and look for the release of commit.
func (f *fleet) find(t *testing.T, commit string) (release.Found, error) {
	t.Helper()
	if _, err := f.host.Fetch(context.Background()); err != nil {
		t.Fatalf("host Fetch = %v", err)
	}
	fi := release.Finder{RepoDir: f.host.Dir, Verifier: release.AllowedSigners(f.allowed, "builder")}
	return fi.Find(context.Background(), commit)
}

// sample is a release of commit for two hosts.
func sample(commit string) release.Release {
	return release.Release{
		Commit:  commit,
		Builder: "cardinal",
		Time:    time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC),
		Hosts: map[string]release.Host{
			"raccoon00": {System: "aarch64-linux", DrvPath: "/nix/store/" + strings.Repeat("a", 32) + "-nixos-system-raccoon00-24.05.drv",
				OutPath: "/nix/store/" + strings.Repeat("b", 32) + "-nixos-system-raccoon00-24.05"},
			"eagle": {Error: "error: attribute 'forgejo' missing"},
		},
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
