package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// binDirs holds the agent and the decrypt helper, built once per test
// binary and build tags.
var (
	buildMu sync.Mutex
	binDirs = map[string]string{}
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childFetchEnv); dir != "" {
		os.Exit(childFetch(dir))
	}
	if mode := os.Getenv(childPollsEnv); mode != "" {
		os.Exit(childPolls(mode))
	}
	code := m.Run()
	for _, dir := range binDirs {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// agentBinary returns the path of avalanche-agent built from this tree,
// with avalanche-decrypt next to it.
func agentBinary(tb testing.TB) string { return buildAgent(tb, "") }

// buildAgent builds avalanche-agent and avalanche-decrypt with the given
// build tags (once per test binary) and returns the agent's path.
func buildAgent(tb testing.TB, tags string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if dir, ok := binDirs[tags]; ok {
		return filepath.Join(dir, "avalanche-agent")
	}
	dir, err := os.MkdirTemp("", "avalanche-bench-bin-")
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-tags", tags, "-o", dir+"/", "../agent/cmd/avalanche-agent", "../agent/cmd/avalanche-decrypt")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		tb.Fatalf("go build -tags %q: %v\n%s", tags, err, out)
	}
	binDirs[tags] = dir
	return filepath.Join(dir, "avalanche-agent")
}

// fullRun reports whether the full (slow) form of the suite was asked for.
func fullRun() bool { return os.Getenv("AVALANCHE_BENCH_FULL") == "1" }

// host is a sandboxed host running the real agent binary in a child
// process, following a repository served by git http-backend.
type host struct {
	t       testing.TB
	dir     string
	up      *nixtest.Repo
	server  *gittest.HTTPServer
	opts    nixtest.FlakeOptions
	cfg     map[string]any
	cfgPath string
	sock    string
	key     secretstest.AgeKey // set when the host has secrets
	proc    *exec.Cmd
	done    chan struct{}
	logPath string
	// checkedActs is how many activation log lines checkConsistent has seen.
	checkedActs int
	// checkedRollbacks counts the "rolled back" log lines seen by then.
	checkedRollbacks int
	// redundantSwitches counts rollbacks to the system already running.
	redundantSwitches int
	// binary is the agent to run; default agentBinary. env is added to
	// its environment.
	binary string
	env    []string
}

const hostName = "benchhost"

// secretsManifest declares one secret, taken from the commit's secrets/token.yaml.
const secretsManifest = `{"version": 1, "secrets": [{"name": "token", "sopsFile": "${./secrets/token.yaml}", "key": "token"}]}`

// hostOptions shape newHost.
type hostOptions struct {
	secrets bool // a secrets manifest, an age key and a tmpfs secrets store
	url     string
	mutate  func(c map[string]any)
}

func newHost(t testing.TB, o hostOptions) *host {
	t.Helper()
	nixtest.Require(t)
	dir := t.TempDir()
	h := &host{t: t, dir: dir, up: nixtest.NewRepo(t, "main"), logPath: filepath.Join(dir, "agent.log")}
	h.opts = nixtest.FlakeOptions{Name: hostName, Marker: "v0", ActivationLog: filepath.Join(dir, "activations.log"),
		CurrentSystemLink: filepath.Join(dir, "current-system")}
	h.server = gittest.StartHTTPServer(t, h.up.Bare, "")
	url := h.server.URL
	if o.url != "" {
		url = o.url
	}
	h.cfg = map[string]any{
		"version": 1, "hostname": hostName, "pollInterval": "1h",
		"repository": map[string]any{"url": url, "fetchTimeout": "20s"},
		"stateDir":   filepath.Join(dir, "state"), "runtimeDir": filepath.Join(dir, "run"),
		"deploy": map[string]any{"profile": filepath.Join(dir, "profiles", "system"), "currentSystem": h.opts.CurrentSystemLink,
			"bootedSystem": filepath.Join(dir, "booted-system"), "systemdRun": false, "confirmTimeout": "10s", "nixArgs": nixtest.Args()},
	}
	if o.secrets {
		secretstest.RequireMount(t)
		h.key = secretstest.NewAgeKey(t)
		h.opts.SecretsManifest = secretsManifest
		h.cfg["secrets"] = map[string]any{"dir": filepath.Join(dir, "secrets"), "ageKeyFiles": []string{h.key.File},
			"helper": filepath.Join(filepath.Dir(agentBinary(t)), "avalanche-decrypt")}
		t.Cleanup(func() { syscall.Unmount(h.secretsRoot(), syscall.MNT_DETACH) })
	}
	if o.mutate != nil {
		o.mutate(h.cfg)
	}
	h.writeConfig()
	t.Cleanup(h.stop)
	return h
}

func (h *host) writeConfig() {
	b, _ := json.MarshalIndent(h.cfg, "", "  ")
	h.cfgPath = filepath.Join(h.dir, "config.json")
	if err := os.WriteFile(h.cfgPath, b, 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.sock = filepath.Join(h.cfg["runtimeDir"].(string), "agent.sock")
}

func (h *host) stateDir() string    { return h.cfg["stateDir"].(string) }
func (h *host) secretsRoot() string { return filepath.Join(h.cfg["runtimeDir"].(string), "secrets.d") }
func (h *host) secretsLink() string { return filepath.Join(h.dir, "secrets") }

// commit writes the flake (and, with secrets, the secret encrypted to the
// host) and pushes it.
func (h *host) commit(msg, secret string) string {
	h.t.Helper()
	if h.opts.SecretsManifest != "" {
		h.up.WriteFile(h.t, "secrets/token.yaml", string(secretstest.Encrypt(h.t, "yaml", "token: "+secret+"\n", h.key.Recipient)))
	}
	return h.up.WriteFlake(h.t, h.opts, msg)
}

// start runs the agent binary and waits until its socket answers.
func (h *host) start() {
	h.t.Helper()
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer logf.Close()
	bin := h.binary
	if bin == "" {
		bin = agentBinary(h.t)
	}
	cmd := exec.Command(bin, "run", "--config", h.cfgPath)
	cmd.Env = append(os.Environ(), "JOURNAL_STREAM=", "NOTIFY_SOCKET=", "XDG_CACHE_HOME="+filepath.Join(h.dir, "cache"))
	cmd.Env = append(cmd.Env, h.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("starting the agent: %v", err)
	}
	h.proc, h.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(h.done)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := h.status(); err == nil {
			return
		}
		select {
		case <-h.done:
			h.t.Fatalf("the agent exited at start-up:\n%s", h.logTail())
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the agent's socket never answered:\n%s", h.logTail())
		}
	}
}

// kill SIGKILLs the agent's process group: the agent and every command it
// runs (nix, the switch script, the decrypt helper), as a power cut would.
func (h *host) kill() {
	h.t.Helper()
	syscall.Kill(-h.proc.Process.Pid, syscall.SIGKILL)
	h.wait()
}

// stop ends the agent with SIGTERM.
func (h *host) stop() {
	if h.proc == nil {
		return
	}
	h.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-h.proc.Process.Pid, syscall.SIGKILL)
		<-h.done
	}
	h.proc = nil
}

func (h *host) wait() {
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		h.t.Fatalf("agent %d did not die", h.proc.Process.Pid)
	}
	h.proc = nil
}

func (h *host) logTail() string {
	b, _ := os.ReadFile(h.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// Wire types of the local API, decoded leniently: bench cannot import the
// agent's internal packages.
type (
	agentStatus struct {
		State     string      `json:"state"`
		Passes    uint64      `json:"passes"`
		LastError string      `json:"lastError"`
		Deployed  *deployment `json:"deployed"`
		Pending   *deployment `json:"pending"`
		Fetched   struct {
			Commit string `json:"commit"`
		} `json:"fetched"`
	}
	deployment struct {
		Commit     string `json:"commit"`
		StorePath  string `json:"storePath"`
		Result     string `json:"result"`
		SecretsGen string `json:"secretsGeneration"`
	}
	syncResult struct {
		Pass   uint64 `json:"pass"`
		OK     bool   `json:"ok"`
		Result string `json:"result"`
		Error  string `json:"error"`
	}
	// stateFile is the part of state.json the suite checks.
	stateFile struct {
		Version  int         `json:"version"`
		Deployed *deployment `json:"deployed"`
		Pending  *deployment `json:"pending"`
	}
)

func (h *host) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", h.sock)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

func (h *host) call(method, path string, v any) error {
	req, _ := http.NewRequest(method, "http://agent"+path, nil)
	resp, err := h.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

func (h *host) status() (agentStatus, error) {
	var s agentStatus
	return s, h.call(http.MethodGet, "/v1/status", &s)
}

func (h *host) mustStatus() agentStatus {
	h.t.Helper()
	s, err := h.status()
	if err != nil {
		h.t.Fatalf("status: %v\n%s", err, h.logTail())
	}
	return s
}

// sync runs a pass and returns its result.
func (h *host) sync() syncResult {
	h.t.Helper()
	var r syncResult
	if err := h.call(http.MethodPost, "/v1/sync?wait=1", &r); err != nil {
		h.t.Fatalf("sync: %v\n%s", err, h.logTail())
	}
	return r
}

// trigger asks for a pass without waiting.
func (h *host) trigger() {
	h.t.Helper()
	var r syncResult
	if err := h.call(http.MethodPost, "/v1/sync", &r); err != nil {
		h.t.Fatalf("sync: %v", err)
	}
}

// settle waits until the agent has finished at least n passes and is not
// in the middle of one.
func (h *host) settle(n uint64, timeout time.Duration) agentStatus {
	h.t.Helper()
	var s agentStatus
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s = h.mustStatus()
		if s.Passes >= n && (s.State == "idle" || s.State == "failed" || s.State == "suspended") {
			return s
		}
	}
	h.t.Fatalf("agent did not settle after %d passes; last status %+v\n%s", n, s, h.logTail())
	return s
}

// readState decodes state.json as the agent's next start would.
func (h *host) readState() (stateFile, error) {
	var st stateFile
	b, err := os.ReadFile(filepath.Join(h.stateDir(), "state.json"))
	if os.IsNotExist(err) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decoding state.json: %w (%d bytes)", err, len(b))
	}
	if st.Version != 1 {
		return st, fmt.Errorf("state.json version %d", st.Version)
	}
	return st, nil
}

// activations returns the switch script's log lines: "<action> <out>".
func (h *host) activations() []string {
	b, _ := os.ReadFile(h.opts.ActivationLog)
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}

// countInLog counts occurrences of s in the agent's log.
func (h *host) countInLog(s string) int {
	b, _ := os.ReadFile(h.logPath)
	return bytes.Count(b, []byte(s))
}

func resolve(link string) string {
	p, err := filepath.EvalSymlinks(link)
	if err != nil {
		return ""
	}
	return p
}

// mountTmpfs mounts a tmpfs of size at dir until the test ends.
func mountTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	secretstest.RequireMount(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0751"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

func decodeJSON(r io.Reader, v any) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
