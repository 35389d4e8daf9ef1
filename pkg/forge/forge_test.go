package forge_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    forge.Endpoint
		wantErr string
	}{
		{raw: "https://git.internal", want: forge.Endpoint{Flavour: forge.Gitea, API: "https://git.internal/api/v1"}},
		{raw: "https://git.internal/", want: forge.Endpoint{Flavour: forge.Gitea, API: "https://git.internal/api/v1"}},
		{raw: "https://example.org/forgejo/api/v1/", want: forge.Endpoint{Flavour: forge.Gitea, API: "https://example.org/forgejo/api/v1"}},
		{raw: "http://127.0.0.1:3000", want: forge.Endpoint{Flavour: forge.Gitea, API: "http://127.0.0.1:3000/api/v1"}},
		{raw: "https://github.com", want: forge.Endpoint{Flavour: forge.GitHub, API: "https://api.github.com"}},
		{raw: "https://api.github.com/", want: forge.Endpoint{Flavour: forge.GitHub, API: "https://api.github.com"}},
		{raw: "https://ghe.example.com/api/v3", want: forge.Endpoint{Flavour: forge.GitHub, API: "https://ghe.example.com/api/v3"}},
		{raw: "", wantErr: "is empty"},
		{raw: "git.internal", wantErr: "scheme must be https"},
		{raw: "ssh://git.internal", wantErr: "scheme must be https"},
		{raw: "https://", wantErr: "has no host"},
		{raw: "https://bot:hunter2@git.internal", wantErr: "only scheme, host and path"},
	} {
		got, err := forge.ParseURL(tc.raw)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseURL(%q) = %+v, %v; want an error containing %q", tc.raw, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q) error %q shows the password", tc.raw, err)
		}
	}
}

type world struct {
	fake   *forgetest.Server
	client *forge.Client
	commit string
	bare   string // a commit the forge has, with no status
}

func newWorld(t *testing.T) *world {
	t.Helper()
	repo := gittest.NewRepo(t)
	commit := repo.Commit(t, map[string]string{"flake.nix": "{}"}, "first")
	bare := repo.Commit(t, map[string]string{"flake.nix": "{ }"}, "second")
	fake := forgetest.Start(t, "fleet/avalanche", repo.Dir, "s3cret")
	ep, err := forge.ParseURL(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &world{fake: fake, commit: commit, bare: bare,
		client: &forge.Client{Endpoint: ep, Repository: "fleet/avalanche", Token: "s3cret", UserAgent: "avalanche-agent/test"}}
}

func TestCreateStatus(t *testing.T) {
	w := newWorld(t)
	s := forge.Status{State: forge.Failure, Context: "avalanche/eagle", TargetURL: "https://grafana.internal/d/fleet",
		Description: "rolled back: " + strings.Repeat("activation failed ", 20)}
	if err := w.client.CreateStatus(context.Background(), w.commit, s); err != nil {
		t.Fatalf("CreateStatus = %v", err)
	}
	got := w.fake.Received()
	if len(got) != 1 {
		t.Fatalf("forge received %d statuses; want 1", len(got))
	}
	want := s
	want.Description = forge.Elide(s.Description, forge.MaxDescription)
	if got[0].Scheme != "token" {
		t.Errorf("Authorization scheme = %q; want Forgejo's \"token\"", got[0].Scheme)
	}
	if diff := cmp.Diff(want, got[0].Status); diff != "" || got[0].SHA != w.commit {
		t.Errorf("forge received %s %+v; want %s (-want +got):\n%s", got[0].SHA, got[0].Status, w.commit, diff)
	}
	if n := len([]rune(got[0].Status.Description)); n != forge.MaxDescription {
		t.Errorf("description is %d characters; want it cut to %d", n, forge.MaxDescription)
	}
}

// Every answer but 201 is an error of the class the caller acts on.
func TestCreateStatusErrors(t *testing.T) {
	w := newWorld(t)
	ok := forge.Status{State: forge.Success, Context: "avalanche/eagle"}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(c *forge.Client, sha *string, s *forge.Status)
		fail   []int
		class  error
		text   string
	}{
		{name: "wrong token", change: func(c *forge.Client, _ *string, _ *forge.Status) { c.Token = "wrong" }, class: forge.ErrUnauthorized, text: "401 Unauthorized"},
		{name: "token without write scope", change: func(c *forge.Client, _ *string, _ *forge.Status) { c.Token = w.fake.ReadOnlyToken() },
			class: forge.ErrUnauthorized, text: "403 Forbidden: token does not have at least one of required scope(s), required=[write:repository]"},
		{name: "unknown repository", change: func(c *forge.Client, _ *string, _ *forge.Status) { c.Repository = "fleet/other" }, class: forge.ErrRejected, text: "404 Not Found"},
		// Gitea answers a bare 500; the client asks whether the commit is there.
		{name: "unknown commit", change: func(_ *forge.Client, sha *string, _ *forge.Status) { *sha = strings.Repeat("ab", 20) }, class: forge.ErrRejected,
			text: "500 Internal Server Error; the commit: 404 Not Found: commit doesn't exist: abab"},
		{name: "short commit id", change: func(_ *forge.Client, sha *string, _ *forge.Status) { *sha = (*sha)[:12] }, class: forge.ErrRejected, text: "not a full commit id"},
		{name: "bad state", change: func(_ *forge.Client, _ *string, s *forge.Status) { s.State = "done" }, class: forge.ErrRejected, text: `state "done"`},
		{name: "server error", fail: []int{500}, class: forge.ErrUnavailable, text: "500 Internal Server Error: injected failure"},
		{name: "bad gateway", fail: []int{502}, class: forge.ErrUnavailable, text: "502 Bad Gateway"},
		{name: "rate limited", fail: []int{429}, class: forge.ErrUnavailable, text: "429 Too Many Requests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, sha, s := *w.client, w.commit, ok
			if tc.change != nil {
				tc.change(&c, &sha, &s)
			}
			w.fake.Fail(tc.fail...)
			err := c.CreateStatus(ctx, sha, s)
			if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("CreateStatus = %v; want %v containing %q", err, tc.class, tc.text)
			}
			for _, other := range []error{forge.ErrUnavailable, forge.ErrUnauthorized, forge.ErrRejected} {
				if other != tc.class && errors.Is(err, other) {
					t.Errorf("CreateStatus = %v; want it %v only, not %v", err, tc.class, other)
				}
			}
			if err != nil && strings.Contains(err.Error(), c.Token) && c.Token != "" {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
	if n := len(w.fake.Received()); n != 0 {
		t.Errorf("forge accepted %d statuses; want none", n)
	}
}

func TestElide(t *testing.T) {
	long := "failed: building x-nixos-system-eagle: build error: nix-store --realise " + strings.Repeat("--option x y ", 30) +
		"error: builder for x.drv failed with exit code 1"
	got := forge.Elide(long, forge.MaxDescription)
	if n := len([]rune(got)); n != forge.MaxDescription || !strings.HasPrefix(got, "failed: building x-nixos") ||
		!strings.HasSuffix(got, "failed with exit code 1") || !strings.Contains(got, " … ") {
		t.Errorf("Elide(long) = %q (%d characters); want %d keeping the step and the cause", got, n, forge.MaxDescription)
	}
	if got := forge.Elide("deployed\n  ", 140); got != "deployed" {
		t.Errorf("Elide(short) = %q; want it on one line, unchanged", got)
	}
}

func TestUnreachable(t *testing.T) {
	w := newWorld(t)
	w.fake.Stop()
	err := w.client.CreateStatus(context.Background(), w.commit, forge.Status{State: forge.Pending, Context: "avalanche/eagle"})
	if !errors.Is(err, forge.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("CreateStatus to a stopped forge = %v; want ErrUnavailable, connection refused", err)
	}
	w.fake.Restart(t)
	if err := w.client.CreateStatus(context.Background(), w.commit, forge.Status{State: forge.Pending, Context: "avalanche/eagle"}); err != nil {
		t.Errorf("CreateStatus after the forge came back = %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "42")
		http.Error(w, `{"message":"slow down"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ep, _ := forge.ParseURL(srv.URL)
	c := &forge.Client{Endpoint: ep, Repository: "o/r", Token: "t"}
	err := c.CreateStatus(context.Background(), strings.Repeat("a", 40), forge.Status{State: forge.Success, Context: "x"})
	var he *forge.HTTPError
	if !errors.As(err, &he) || he.RetryAfter.Seconds() != 42 || he.Message != "slow down" {
		t.Errorf("CreateStatus = %#v; want an HTTPError with RetryAfter 42s and the forge's message", err)
	}
}

// GitHub: the same body at /repos/{owner}/{repo}/statuses/{sha} of the
// API host, a Bearer token and GitHub's media type and API version.
func TestGitHubRequest(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	c := &forge.Client{Endpoint: forge.Endpoint{Flavour: forge.GitHub, API: srv.URL + "/api/v3"}, Repository: "octo/fleet", Token: "ghp_x", UserAgent: "avalanche-agent"}
	sha := strings.Repeat("c", 40)
	if err := c.CreateStatus(context.Background(), sha, forge.Status{State: forge.Error, Context: "avalanche/builder", Description: "host trouble"}); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/api/v3/repos/octo/fleet/statuses/"+sha {
		t.Errorf("request = %s %s; want POST /api/v3/repos/octo/fleet/statuses/%s", got.Method, got.URL.Path, sha)
	}
	for h, want := range map[string]string{"Authorization": "Bearer ghp_x", "Accept": "application/vnd.github+json",
		"X-Github-Api-Version": "2022-11-28", "User-Agent": "avalanche-agent", "Content-Type": "application/json"} {
		if v := got.Header.Get(h); v != want {
			t.Errorf("header %s = %q; want %q", h, v, want)
		}
	}
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"state": "error", "context": "avalanche/builder", "description": "host trouble"}, m); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}
