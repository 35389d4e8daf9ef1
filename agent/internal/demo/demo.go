// Package demo runs the agent's main job in a throw-away sandbox: a real
// git server, a tiny flake, real nix builds into a sandbox profile.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

//go:embed flake.nix.tmpl
var flakeTemplate string

// Sandbox is a demo fleet on this machine.
type Sandbox struct {
	Dir      string // everything lives here
	Work     string // the operator's checkout
	Upstream string // the bare repository the git server serves
	URL      string // the git server's URL
	srv      *http.Server
}

// Check reports what the demo needs and this machine lacks.
func Check() error {
	var missing []string
	for _, p := range []string{"git", "nix", "nix-env"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the demo needs %s: sudo apt-get install -y git nix-bin", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo builds with Debian's single-user nix, which needs root: run it with sudo")
	}
	return nil
}

// New creates the sandbox, its first commit and a git smart-HTTP server
// (git http-backend behind net/http/cgi) on loopback.
func New(ctx context.Context, dir string) (*Sandbox, error) {
	s := &Sandbox{Dir: dir, Work: filepath.Join(dir, "work"), Upstream: filepath.Join(dir, "srv", "avalanche.git")}
	if err := s.git(ctx, dir, "init", "--quiet", "--bare", s.Upstream); err != nil {
		return nil, err
	}
	if err := s.git(ctx, dir, "init", "--quiet", "-b", "main", s.Work); err != nil {
		return nil, err
	}
	if err := s.serve(); err != nil {
		return nil, err
	}
	return s, nil
}

// CurrentSystem is the sandbox's /run/current-system.
func (s *Sandbox) CurrentSystem() string { return filepath.Join(s.Dir, "current-system") }

// Commit is one change the demo operator pushes.
type Commit struct {
	Message string
	Motd    string            // the demo system's /etc/motd
	Files   map[string]string // extra files, by path
	// Broken makes the system's switch fail, as when a unit does not start.
	Broken bool
}

// Push commits the flake for c (plus c's files) and pushes main.
func (s *Sandbox) Push(ctx context.Context, c Commit) error {
	broken := ""
	if c.Broken {
		broken = `echo "warning: the following units failed: demo-web.service" >&2; exit 4`
	}
	// A replacer, not text/template: the template engine would add 110 KB
	// to the agent's binary for four substitutions.
	flake := strings.NewReplacer("@system@", nixSystem(), "@motd@", c.Motd, "@current@", s.CurrentSystem(),
		"@broken@", broken).Replace(flakeTemplate)
	files := map[string]string{"flake.nix": flake}
	for name, content := range c.Files {
		files[name] = content
	}
	for name, content := range files {
		p := filepath.Join(s.Work, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := s.git(ctx, s.Work, "add", "--all"); err != nil {
		return err
	}
	if err := s.git(ctx, s.Work, "commit", "--quiet", "--allow-empty", "-m", c.Message); err != nil {
		return err
	}
	return s.git(ctx, s.Work, "push", "--quiet", s.Upstream, "HEAD:refs/heads/main")
}

func (s *Sandbox) serve() error {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return err
	}
	h := &cgi.Handler{Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(s.Upstream), "GIT_HTTP_EXPORT_ALL=1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the demo git server: %w", err)
	}
	s.URL = "http://" + ln.Addr().String() + "/avalanche.git"
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return nil
}

// Close stops the git server.
func (s *Sandbox) Close() error { return s.srv.Close() }

func (s *Sandbox) git(ctx context.Context, dir string, args ...string) error {
	base := []string{"-c", "user.name=Demo Operator", "-c", "user.email=operator@avalanche.invalid", "-c", "commit.gpgsign=false"}
	cmd := exec.CommandContext(ctx, "git", append(base, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func nixSystem() string {
	if runtime.GOARCH == "arm64" {
		return "aarch64-linux"
	}
	return "x86_64-linux"
}
