package gitsync

import (
	"context"
	"errors"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// TestPush pushes with the credentials Fetch uses, over SSH and to a local
// path, and refuses to move a branch that is not where the pusher saw it.
func TestPush(t *testing.T) {
	f, first := newFixture(t)
	sshURL, key, knownHosts := gittest.NewSSHServer(t, f.bare)
	remotes := map[string]Remote{
		"ssh":   {URL: sshURL, SSHKeyFile: key, KnownHostsFile: knownHosts},
		"local": {URL: f.bare},
	}
	for name, remote := range remotes {
		t.Run(name, func(t *testing.T) {
			branch := "pushed/" + name
			r := newRepo(t, remote)
			mustFetch(t, r)
			ctx := context.Background()
			if err := r.Push(ctx, branch, "", first); err != nil {
				t.Fatalf("Push(%s, new branch) = %v", branch, err)
			}
			if got := f.work.Git(t, "-C", f.bare, "rev-parse", "refs/heads/"+branch); got != first {
				t.Fatalf("remote %s = %s after Push; want %s", branch, got, first)
			}
			second := f.commit(t, "second "+name)
			mustFetch(t, r)
			err := r.Push(ctx, branch, second, second)
			if !errors.Is(err, ErrPushRejected) || IsTransient(err) {
				t.Fatalf("Push expecting %s at %s = %v; want ErrPushRejected", branch, second, err)
			}
			if err := r.Push(ctx, branch, first, second); err != nil {
				t.Fatalf("Push(%s, %s -> %s) = %v", branch, first, second, err)
			}
			if got := f.work.Git(t, "-C", f.bare, "rev-parse", "refs/heads/"+branch); got != second {
				t.Fatalf("remote %s = %s after the fast-forward; want %s", branch, got, second)
			}
		})
	}
}

func TestPushUnreachable(t *testing.T) {
	f, first := newFixture(t)
	r := newRepo(t, Remote{URL: f.bare})
	mustFetch(t, r)
	r.Remote.URL = "http://127.0.0.1:1/repo.git"
	err := r.Push(context.Background(), "x", "", first)
	if !errors.Is(err, ErrUnreachable) || !IsTransient(err) {
		t.Fatalf("Push to a closed port = %v; want ErrUnreachable", err)
	}
}
