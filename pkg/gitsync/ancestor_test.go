package gitsync

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

func TestIsAncestorLongHistory(t *testing.T) {
	f, first := newFixture(t)
	tip := gittest.GenerateHistory(t, f.bare, "main", 5000, 0, 0)
	f.work.Git(t, "fetch", "-q", f.bare, "main")
	f.work.Git(t, "reset", "-q", "--hard", "FETCH_HEAD")
	f.work.Checkout(t, "side")
	f.work.Git(t, "reset", "-q", "--hard", first)
	side := f.commit(t, "side branch")
	f.work.Checkout(t, "main")
	r := newRepo(t, Remote{URL: f.bare}, "main", "side")
	mustFetch(t, r)

	ctx := context.Background()
	for _, tc := range []struct {
		name             string
		ancestor, commit string
		want             bool
	}{
		{"root of long history", first, tip, true},
		{"unrelated branch", side, tip, false},
		{"tip of itself", tip, tip, true},
		{"descendant is not an ancestor", tip, first, false},
	} {
		start := time.Now()
		got, err := r.IsAncestor(ctx, tc.ancestor, tc.commit)
		if err != nil || got != tc.want {
			t.Errorf("%s: IsAncestor(%.7s, %.7s) = %v, %v; want %v", tc.name, tc.ancestor, tc.commit, got, err, tc.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: IsAncestor took %v over 5000 commits", tc.name, d)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.IsAncestor(cancelled, side, tip); !errors.Is(err, context.Canceled) {
		t.Errorf("IsAncestor(cancelled ctx) = %v; want context.Canceled", err)
	}
	for _, bad := range []string{"", "main", tip[:7], tip + "00"} {
		if _, err := r.IsAncestor(ctx, bad, tip); err == nil {
			t.Errorf("IsAncestor(%q, tip) = nil error; want invalid hash", bad)
		}
	}
	if _, err := r.IsAncestor(ctx, "0123456789012345678901234567890123456789", tip); err == nil {
		t.Errorf("IsAncestor(unknown commit, tip) = nil error; want an error")
	}
}

func TestRemoteSession(t *testing.T) {
	for _, tc := range []struct {
		remote    Remote
		want      error
		wantShown string
	}{
		{Remote{URL: "git@git.example:fleet/avalanche.git"}, ErrAuth, "git@git.example:fleet/avalanche.git"},
		{Remote{URL: "ssh://git@git.example/fleet.git", SSHKeyFile: "/nonexistent/key", KnownHostsFile: "/nonexistent/kh"}, ErrAuth, ""},
		{Remote{URL: "https://user:hunter2@git.example/fleet.git"}, nil, "https://user:xxxxx@git.example/fleet.git"},
		{Remote{URL: "https://git.example/fleet.git", TokenFile: "/nonexistent/token"}, ErrAuth, ""},
		{Remote{URL: "ftp://git.example/fleet.git"}, nil, ""},
	} {
		s, err := tc.remote.newSession(context.Background())
		switch {
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("newSession(%q) = %v; want %v", tc.remote.URL, err, tc.want)
		case tc.want == nil && tc.wantShown != "" && (err != nil || s.shown != tc.wantShown):
			t.Errorf("newSession(%q) = %+v, %v; want shown URL %q", tc.remote.URL, s, err, tc.wantShown)
		case tc.want == nil && tc.wantShown == "" && err == nil:
			t.Errorf("newSession(%q) = nil error; want unsupported protocol", tc.remote.URL)
		}
	}
}
