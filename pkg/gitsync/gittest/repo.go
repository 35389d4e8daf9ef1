// Package gittest provides real git repositories and servers for tests:
// work repositories driven by the git CLI, a smart HTTP server backed by
// git http-backend, an sshd serving git over SSH, and signing keys.
package gittest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// WorkRepo is a non-bare repository in a temporary directory, on branch
// main after NewRepo.
type WorkRepo struct {
	// Dir is the work tree.
	Dir string
	// Home is the HOME used for git commands, isolating user config.
	Home string
}

// NewRepo creates an empty work repository on branch main.
func NewRepo(t testing.TB) *WorkRepo {
	t.Helper()
	requireGit(t)
	w := &WorkRepo{Dir: t.TempDir(), Home: t.TempDir()}
	w.Git(t, "init", "-q", "-b", "main")
	return w
}

// NewBare creates an empty bare repository named repo.git in a temporary
// directory and returns its path.
func NewBare(t testing.TB) string {
	t.Helper()
	requireGit(t)
	dir := filepath.Join(t.TempDir(), "repo.git")
	run(t, "", Env(t.TempDir()), "git", "init", "-q", "--bare", "-b", "main", dir)
	return dir
}

// Env returns a hermetic environment for git commands with home as HOME
// and a fixed identity.
func Env(home string) []string {
	env := []string{
		"HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Avalanche Test", "GIT_AUTHOR_EMAIL=test@avalanche.invalid",
		"GIT_COMMITTER_NAME=Avalanche Test", "GIT_COMMITTER_EMAIL=test@avalanche.invalid",
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	return env
}

// Git runs git with args in the work tree and returns its trimmed stdout.
func (w *WorkRepo) Git(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, w.Dir, Env(w.Home), "git", args...)
}

// Commit writes files (path -> content; an empty content deletes the file),
// commits everything with msg and returns the new commit hash.
func (w *WorkRepo) Commit(t testing.TB, files map[string]string, msg string) string {
	t.Helper()
	return w.commit(t, files, msg)
}

// CommitSSHSigned commits like Commit, signed with the SSH private key
// file keyFile (git's gpg.format=ssh).
func (w *WorkRepo) CommitSSHSigned(t testing.TB, files map[string]string, msg, keyFile string) string {
	t.Helper()
	return w.commit(t, files, msg, "-c", "gpg.format=ssh", "-c", "user.signingkey="+keyFile)
}

// commit commits with extra git config options; any option means signing.
func (w *WorkRepo) commit(t testing.TB, files map[string]string, msg string, config ...string) string {
	t.Helper()
	w.writeFiles(t, files)
	w.Git(t, "add", "-A")
	args := append(config, "commit", "-q", "--allow-empty", "-m", msg)
	if len(config) > 0 {
		args = append(args, "-S")
	}
	w.Git(t, args...)
	return w.Head(t)
}

func (w *WorkRepo) writeFiles(t testing.TB, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(w.Dir, name)
		if content == "" {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Head returns the hash of HEAD.
func (w *WorkRepo) Head(t testing.TB) string {
	t.Helper()
	return w.Git(t, "rev-parse", "HEAD")
}

// Checkout switches to branch, creating it at HEAD when it does not exist.
func (w *WorkRepo) Checkout(t testing.TB, branch string) {
	t.Helper()
	if _, err := w.try("rev-parse", "--verify", "-q", "refs/heads/"+branch); err == nil {
		w.Git(t, "checkout", "-q", branch)
		return
	}
	w.Git(t, "checkout", "-q", "-b", branch)
}

// Push force-pushes refspecs (e.g. "main", "HEAD:testing/eagle") to the
// repository at bareDir.
func (w *WorkRepo) Push(t testing.TB, bareDir string, refspecs ...string) {
	t.Helper()
	w.Git(t, append([]string{"push", "-q", "--force", bareDir}, refspecs...)...)
}

func (w *WorkRepo) try(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = w.Dir, Env(w.Home)
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// run runs name with args and fails the test with argv and stderr on error.
func run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// requireGit fails the test when git is missing.
func requireGit(t testing.TB) {
	t.Helper()
	Require(t, "git")
}

// Require fails the test when the program is not installed, saying how to
// install it.
func Require(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s is needed for this test (install it with .ci/install): %v", program, err)
	}
	return p
}
