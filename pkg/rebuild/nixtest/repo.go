package nixtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a work repository whose commits are pushed to a bare repository,
// the shape of the agent's local mirror.
type Repo struct {
	Work   string // checkout tests write flakes into
	Bare   string // bare repository Nix reads from
	Branch string // branch commits are pushed to
}

// NewRepo creates an empty work repository and a bare one under t.TempDir().
func NewRepo(t testing.TB, branch string) *Repo {
	t.Helper()
	dir := t.TempDir()
	r := &Repo{Work: filepath.Join(dir, "work"), Bare: filepath.Join(dir, "repo.git"), Branch: branch}
	Git(t, dir, "init", "--quiet", "--bare", r.Bare)
	Git(t, dir, "init", "--quiet", r.Work)
	Git(t, r.Work, "checkout", "--quiet", "-b", branch)
	return r
}

// Commit commits everything in the work tree (even nothing), pushes it to
// r.Branch of the bare repository and returns the commit hash.
func (r *Repo) Commit(t testing.TB, message string) string {
	t.Helper()
	Git(t, r.Work, "add", "--all")
	Git(t, r.Work, "commit", "--quiet", "--allow-empty", "-m", message)
	Git(t, r.Work, "push", "--quiet", "--force", r.Bare, "HEAD:refs/heads/"+r.Branch)
	return Git(t, r.Work, "rev-parse", "HEAD")
}

// WriteFlake writes a flake into the work tree and commits it.
func (r *Repo) WriteFlake(t testing.TB, opts FlakeOptions, message string) string {
	t.Helper()
	if err := WriteFlake(r.Work, opts); err != nil {
		t.Fatalf("WriteFlake: %v", err)
	}
	return r.Commit(t, message)
}

// WriteFile writes one file (slash-separated path) into the work tree.
func (r *Repo) WriteFile(t testing.TB, name, content string) {
	t.Helper()
	p := filepath.Join(r.Work, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Git runs git in dir with a fixed identity and without user or system
// configuration, and returns its trimmed stdout.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	base := []string{"-c", "user.name=Avalanche Test", "-c", "user.email=test@avalanche.invalid",
		"-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}
	cmd := exec.Command("git", append(base, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}
