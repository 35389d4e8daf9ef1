package rebuild_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

func TestEvaluate(t *testing.T) {
	n := newNix(t)
	repo := nixtest.NewRepo(t, "main")
	opts := nixtest.FlakeOptions{Name: "eagle", Marker: t.Name()}
	first := commitSystem(t, n, repo, opts)

	if !strings.HasSuffix(first.ev.DrvPath, "-nixos-system-eagle.drv") || !exists(first.ev.DrvPath) {
		t.Errorf("Evaluate(%q).DrvPath = %q; want an existing nixos-system-eagle.drv", first.ref, first.ev.DrvPath)
	}
	if exists(first.ev.OutPath) {
		t.Errorf("Evaluate(%q) built %s; want evaluation only", first.ref, first.ev.OutPath)
	}

	repo.WriteFile(t, "kubernetes/apps/README.md", "# only a comment changed\n")
	unrelated := commitSystem(t, n, repo, opts)
	if unrelated.ev != first.ev {
		t.Errorf("Evaluate after a kubernetes/-only commit = %v; want unchanged %v", unrelated.ev, first.ev)
	}

	opts.Marker += " changed"
	changed := commitSystem(t, n, repo, opts)
	if changed.ev.OutPath == first.ev.OutPath {
		t.Errorf("Evaluate after a marker change = %v; want a new output path", changed.ev)
	}
}

// TestEvaluateOldCommit pins the reference to a commit that is no longer
// the branch tip: the agent evaluates exactly the commit it verified.
func TestEvaluateOldCommit(t *testing.T) {
	n := newNix(t)
	repo := nixtest.NewRepo(t, "testing/eagle")
	old := commitSystem(t, n, repo, nixtest.FlakeOptions{Marker: "old"})
	oldSHA := nixtest.Git(t, repo.Work, "rev-parse", "HEAD")
	commitSystem(t, n, repo, nixtest.FlakeOptions{Marker: "new"})

	ref := rebuild.FlakeRef(repo.Bare, repo.Branch, oldSHA)
	ev, err := n.Evaluate(context.Background(), ref, "test")
	if err != nil || ev != old.ev {
		t.Errorf("Evaluate(%q) = %v, %v; want %v", ref, ev, err, old.ev)
	}
}

func TestEvaluateError(t *testing.T) {
	n := newNix(t)
	repo := nixtest.NewRepo(t, "main")
	const msg = "eagle: services.forgejo needs a domain"
	sha := repo.WriteFlake(t, nixtest.FlakeOptions{EvalError: msg}, "broken")
	ref := rebuild.FlakeRef(repo.Bare, "main", sha)

	_, err := n.Evaluate(context.Background(), ref, "test")
	if !errors.Is(err, rebuild.ErrEval) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("Evaluate(%q) = %v; want ErrEval with %q", ref, err, msg)
	}
	var ce *rebuild.CommandError
	if !errors.As(err, &ce) || ce.Argv[0] != "nix" || ce.ExitCode == 0 || !strings.Contains(ce.Tail, msg) {
		t.Errorf("Evaluate(%q) = %#v; want a CommandError from nix with %q in its tail", ref, ce, msg)
	}
	if rebuild.IsTransient(err) {
		t.Errorf("IsTransient(%v) = true; want false", err)
	}

	_, err = n.Evaluate(context.Background(), ref, "missing-host")
	if !errors.Is(err, rebuild.ErrEval) || !strings.Contains(err.Error(), "missing-host") {
		t.Errorf("Evaluate(%q, missing-host) = %v; want ErrEval naming the attribute", ref, err)
	}
}

func TestFlakeRef(t *testing.T) {
	tests := []struct {
		dir, branch, commit, want string
	}{
		{"/var/lib/avalanche-agent/repo.git", "main", "abc123",
			"git+file:///var/lib/avalanche-agent/repo.git?ref=main&rev=abc123"},
		{"/srv/repo.git", "testing/eagle", "abc123", "git+file:///srv/repo.git?ref=testing/eagle&rev=abc123"},
		{"/srv/repo.git", "", "abc123", "git+file:///srv/repo.git?rev=abc123"},
		{"/srv/my repo.git", "main", "abc123", "git+file:///srv/my%20repo.git?ref=main&rev=abc123"},
	}
	for _, tt := range tests {
		if got := rebuild.FlakeRef(tt.dir, tt.branch, tt.commit); got != tt.want {
			t.Errorf("FlakeRef(%q, %q, %q) = %q; want %q", tt.dir, tt.branch, tt.commit, got, tt.want)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rebuild.FlakeRef("repo.git", "main", "c"), "git+file://"+wd+"/repo.git?ref=main&rev=c"; got != want {
		t.Errorf("FlakeRef(relative) = %q; want %q", got, want)
	}
}

func TestNixosRebuildCommand(t *testing.T) {
	tests := []struct {
		action, ref, output, want string
	}{
		{"switch", "git+file:///srv/repo.git?ref=main&rev=abc", "eagle",
			"nixos-rebuild switch --flake 'git+file:///srv/repo.git?ref=main&rev=abc#eagle'"},
		{"boot", "/etc/nixos", "eagle", "nixos-rebuild boot --flake '/etc/nixos#eagle'"},
		{"test", "git+file:///it's", "x", `nixos-rebuild test --flake 'git+file:///it'\''s#x'`},
	}
	for _, tt := range tests {
		if got := rebuild.NixosRebuildCommand(tt.action, tt.ref, tt.output); got != tt.want {
			t.Errorf("NixosRebuildCommand(%q, %q, %q) = %q; want %q", tt.action, tt.ref, tt.output, got, tt.want)
		}
	}
}

func TestToplevelAttr(t *testing.T) {
	tests := map[string]string{
		"eagle":      "nixosConfigurations.eagle.config.system.build.toplevel",
		"raccoon-00": "nixosConfigurations.raccoon-00.config.system.build.toplevel",
		"eagle.home": `nixosConfigurations."eagle.home".config.system.build.toplevel`,
	}
	for output, want := range tests {
		if got := rebuild.ToplevelAttr(output); got != want {
			t.Errorf("ToplevelAttr(%q) = %q; want %q", output, got, want)
		}
	}
}
