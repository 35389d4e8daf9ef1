// Package giteatest runs a real Gitea server for tests: the binary that
// the repository's .ci/gitea builds from the Go module proxy, on loopback,
// with SQLite in a temporary directory, an admin user, a token with the
// write:repository scope and one with read:repository only, and a private
// repository into which tests push real commits. The commit-status fake
// (pkg/forge/forgetest) is compared with it. The fleet runs Forgejo, which
// the proxy does not serve; Forgejo inherited Gitea's commit-status API.
package giteatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a running Gitea.
type Server struct {
	// URL is the base URL (the API is under URL/api/v1), without a
	// trailing slash.
	URL string
	// Repository is the private owner/name repository created at start.
	Repository string
	// User owns the tokens: not an administrator (Gitea shows an
	// administrator more, such as the text of internal errors), a
	// collaborator with write access to Repository, as the fleet's
	// reporting account is.
	User string
	// Token has the write:repository scope.
	Token string
	// ReadOnlyToken has the read:repository scope only.
	ReadOnlyToken string
	// Version is what GET /api/v1/version answered.
	Version string

	dir, bin, config string
}

// The accounts, all with one password.
const (
	adminUser = "gitea-admin"
	password  = "avalanche-test-password"
)

// Owner and Name make up the repository every Server holds.
const (
	Owner = "fleet"
	Name  = "avalanche"
)

// Start runs Gitea until t ends: its binary comes from Dir.
func Start(t testing.TB) *Server {
	t.Helper()
	home := Dir(t)
	s := &Server{User: "avalanche", dir: t.TempDir(),
		bin: filepath.Join(home, "bin", "gitea")}
	port := freePort(t)
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.config = filepath.Join(s.dir, "app.ini")
	if err := os.WriteFile(s.config, []byte(appINI(s.dir, filepath.Join(home, "src"), port)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.run(t)
	s.admin(t, "user", "create", "--username", adminUser, "--password", password,
		"--email", adminUser+"@avalanche.invalid", "--admin", "--must-change-password=false")
	s.admin(t, "user", "create", "--username", s.User, "--password", password,
		"--email", s.User+"@avalanche.invalid", "--must-change-password=false")
	s.createRepository(t)
	s.Token = s.newToken(t, "writer", "write:repository")
	s.ReadOnlyToken = s.newToken(t, "reader", "read:repository")
	return s
}

// Dir returns the directory holding bin/gitea and the source tree it reads
// its templates from: $AVALANCHE_GITEA_DIR, or what the repository's
// .ci/gitea prints (it builds Gitea when missing).
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("AVALANCHE_GITEA_DIR"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; d != "/"; d = filepath.Dir(d) {
		script := filepath.Join(d, ".ci", "gitea")
		if _, err := os.Stat(script); err != nil {
			continue
		}
		var stderr bytes.Buffer
		cmd := exec.Command(script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s (builds Gitea from the Go module proxy; .ci/install runs it): %v: %s", script, err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	t.Fatalf("no .ci/gitea above %s and AVALANCHE_GITEA_DIR unset: cannot find Gitea", wd)
	return ""
}

// appINI is a minimal offline configuration: SQLite, no mailer, no SSH,
// no registration, installation done, logs in dir/log.
func appINI(dir, static string, port int) string {
	return fmt.Sprintf(`APP_NAME = avalanche test forge
RUN_MODE = prod
RUN_USER = root
WORK_PATH = %[1]s

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[3]d
ROOT_URL = http://127.0.0.1:%[3]d/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = %[2]s
APP_DATA_PATH = %[1]s/data

[database]
DB_TYPE = sqlite3
PATH = %[1]s/data/gitea.db

[repository]
ROOT = %[1]s/repositories

[security]
INSTALL_LOCK = true
SECRET_KEY = avalanche-test-secret-key
INTERNAL_TOKEN = eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJuYmYiOjE3MDAwMDAwMDB9.avalanche-test-internal-token

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[queue]
TYPE = channel

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[cron]
ENABLED = false

[log]
MODE = file
LEVEL = Warn
ROOT_PATH = %[1]s/log
`, dir, static, port)
}

// env lets Gitea run as root, which it refuses unless told.
func env() []string {
	return append(os.Environ(), "GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true")
}

// run starts `gitea web` in its own process group and waits for its API.
func (s *Server) run(t testing.TB) {
	t.Helper()
	out, err := os.Create(filepath.Join(s.dir, "web.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "web", "--config", s.config, "--work-path", s.dir)
	cmd.Env, cmd.Dir = env(), s.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s web: %v", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	if err := s.waitReady(exited, 2*time.Minute); err != nil {
		t.Fatalf("%s web: %v; its log:\n%s", s.bin, err, s.logTail())
	}
}

func (s *Server) waitReady(exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before serving: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(s.URL + "/api/v1/version")
		if err != nil {
			continue
		}
		var v struct{ Version string }
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && err == nil {
			s.Version = v.Version
			return nil
		}
	}
	return fmt.Errorf("no answer from %s/api/v1/version within %v", s.URL, timeout)
}

// logTail is the end of the server's output and of its log file.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, name := range []string{"web.log", "log/gitea.log"} {
		data, _ := os.ReadFile(filepath.Join(s.dir, name))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "== %s ==\n%s\n", name, data)
	}
	return b.String()
}

// admin runs `gitea admin args...` against the server's database.
func (s *Server) admin(t testing.TB, args ...string) {
	t.Helper()
	argv := append([]string{"admin"}, args...)
	argv = append(argv, "--config", s.config, "--work-path", s.dir)
	cmd := exec.Command(s.bin, argv...)
	cmd.Env, cmd.Dir = env(), s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gitea %s: %v: %s", strings.Join(args[:2], " "), err, tail(out))
	}
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

// newToken creates an access token with scopes, authenticated by password
// (Gitea creates tokens only for basic authentication).
func (s *Server) newToken(t testing.TB, name string, scopes ...string) string {
	t.Helper()
	var tok struct {
		SHA1 string `json:"sha1"`
	}
	s.call(t, s.User, http.MethodPost, "/users/"+s.User+"/tokens", map[string]any{"name": name, "scopes": scopes}, &tok)
	if tok.SHA1 == "" {
		t.Fatalf("creating token %s: no sha1 in the answer", name)
	}
	return tok.SHA1
}

// createRepository creates, as the administrator, organisation Owner,
// its private, empty repository Name, and makes User a collaborator with
// write access.
func (s *Server) createRepository(t testing.TB) {
	t.Helper()
	s.Repository = Owner + "/" + Name
	s.call(t, adminUser, http.MethodPost, "/orgs", map[string]any{"username": Owner, "visibility": "private"}, nil)
	s.call(t, adminUser, http.MethodPost, "/orgs/"+Owner+"/repos", map[string]any{"name": Name, "private": true, "default_branch": "main"}, nil)
	s.call(t, adminUser, http.MethodPut, "/repos/"+s.Repository+"/collaborators/"+s.User, map[string]any{"permission": "write"}, nil)
}

// call sends body as JSON to the API as user (basic authentication),
// wants a 2xx and decodes the answer into out when not nil.
func (s *Server) call(t testing.TB, user, method, path string, body, out any) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, s.URL+"/api/v1"+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s = %s: %s", method, path, resp.Status, answer)
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, answer, err)
		}
	}
}

// PushURL is the repository's smart HTTP URL with the write token in it.
func (s *Server) PushURL() string {
	return strings.Replace(s.URL, "http://", "http://"+s.User+":"+s.Token+"@", 1) + "/" + s.Repository + ".git"
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
