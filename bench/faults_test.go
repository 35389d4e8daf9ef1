package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// cutProxy forwards TCP connections to a backend; while armed it drops
// each connection once it has carried cutAfter bytes towards the client
// since it was armed.
type cutProxy struct {
	ln       net.Listener
	backend  string
	cutAfter int64
	armed    atomic.Bool
	cuts     atomic.Int32
}

func startCutProxy(t testing.TB, backend string, cutAfter int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, backend: backend, cutAfter: cutAfter}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *cutProxy) forward(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.backend)
	if err != nil {
		return
	}
	defer server.Close()
	go io.Copy(server, client)
	var n int64
	buf := make([]byte, 4096)
	for {
		k, err := server.Read(buf)
		if !p.armed.Load() {
			n = 0 // count only what crosses while armed
		}
		if k > 0 {
			if p.armed.Load() && n+int64(k) > p.cutAfter {
				client.Write(buf[:p.cutAfter-n])
				p.cuts.Add(1)
				client.(*net.TCPConn).SetLinger(0) // a reset, like a dropped link
				return
			}
			n += int64(k)
			if _, err := client.Write(buf[:k]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestReliabilityNetworkCut drops the connection in the middle of a pack
// transfer: the fetch must fail with a transient error, the next one must
// succeed, and the repository must pass git fsck.
func TestReliabilityNetworkCut(t *testing.T) {
	w := gittest.NewRepo(t)
	bare := gittest.NewBare(t)
	w.Commit(t, map[string]string{"file.txt": "x\n"}, "first")
	w.Push(t, bare, "HEAD:refs/heads/main")
	srv := gittest.StartHTTPServer(t, bare, "")
	u, _ := url.Parse(srv.URL)
	proxy := startCutProxy(t, u.Host, 256<<10)
	u.Host = proxy.ln.Addr().String()
	r := &gitsync.Repo{Dir: filepath.Join(t.TempDir(), "repo.git"), Remote: gitsync.Remote{URL: u.String()},
		Branches: []string{"main"}, Timeout: 30 * time.Second}
	ctx := context.Background()
	for _, step := range []string{"first clone", "incremental fetch"} {
		tip := gittest.GenerateHistory(t, bare, "main", 100, 20, 1024)
		proxy.armed.Store(true)
		_, err := r.Fetch(ctx)
		proxy.armed.Store(false)
		if err == nil || !gitsync.IsTransient(err) {
			t.Fatalf("%s through a cut connection: Fetch = %v; want a transient error (cuts %d)", step, err, proxy.cuts.Load())
		}
		t.Logf("%s, connection cut after 256 KiB: %v", step, err)
		res, err := r.Fetch(ctx)
		if err != nil || res.Heads["main"] != tip || !res.Changed {
			t.Fatalf("%s, next Fetch = %+v, %v; want main at %s", step, res, err, tip)
		}
		fsck(t, r.Dir)
	}
}

func fsck(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("git", "fsck", "--strict", "--no-dangling")
	cmd.Dir, cmd.Env = dir, gittest.Env(t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fsck in %s: %v\n%s", dir, err, out)
	}
}

// fill writes a file into dir until the file system is full and returns a
// function that removes it again.
func fill(t *testing.T, dir string) func() {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	return func() { os.Remove(p) }
}

// randomText returns n bytes of incompressible base64 text.
func randomText(n int) string {
	b := make([]byte, n*3/4+3)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// TestReliabilityFullStateDisk fills the state directory's file system
// before a fetch that needs space: the pass fails, the state file and the
// running system stay as they were, and once space is back the commit
// deploys.
func TestReliabilityFullStateDisk(t *testing.T) {
	h := newHost(t, hostOptions{})
	mountTmpfs(t, h.stateDir(), "4m")
	first := h.commit("first", "")
	h.start()
	h.settle(1, 2*time.Minute)
	before, _ := h.readState()
	cur := resolve(h.opts.CurrentSystemLink)
	free := fill(t, h.stateDir())
	h.up.WriteFile(t, "kubernetes/blob.txt", randomText(512<<10))
	h.opts.Marker = "v1"
	second := h.commit("second, with a big file", "")
	r := h.sync()
	if r.OK {
		t.Fatalf("sync with a full state disk = %+v; want a failure", r)
	}
	t.Logf("sync with a full state disk: %s", r.Error)
	if !strings.Contains(r.Error, "disk full") || strings.Contains(r.Error, "unreachable") || strings.Contains(r.Error, "stalled") {
		t.Errorf("sync error %q; want it to say the local disk is full, not that the remote is unreachable", r.Error)
	}
	st, err := h.readState()
	if err != nil || st.Deployed == nil || st.Deployed.Commit != first || *st.Deployed != *before.Deployed {
		t.Fatalf("state after the full disk = %+v, %v; want %+v", st.Deployed, err, before.Deployed)
	}
	if got := resolve(h.opts.CurrentSystemLink); got != cur {
		t.Errorf("current system %s; want %s unchanged", got, cur)
	}
	free()
	if r := h.sync(); r.Result != "deployed" {
		t.Fatalf("sync after freeing space = %+v; want deployed\n%s", r, h.logTail())
	}
	if s := h.mustStatus(); s.Deployed.Commit != second {
		t.Errorf("deployed %s; want %s", s.Deployed.Commit, second)
	}
	fsck(t, filepath.Join(h.stateDir(), "repo.git"))
}

// TestReliabilityFullSecretsDisk makes the secrets file system too small
// for a new generation: the deployment fails and the previous secrets stay
// linked and intact, with no partial generation left.
func TestReliabilityFullSecretsDisk(t *testing.T) {
	h := newHost(t, hostOptions{secrets: true})
	// noswap: the agent keeps a never-swapped file system as it finds it
	// (a swappable one it would cover with its own, unbounded).
	mountTmpfs(t, h.secretsRoot(), "256k,noswap")
	first := h.commit("first", "small")
	h.start()
	if s := h.settle(1, 2*time.Minute); s.Deployed == nil || s.Deployed.Commit != first {
		t.Fatalf("first deployment: %+v\n%s", s, h.logTail())
	}
	link, _ := os.Readlink(h.secretsLink())
	h.opts.Marker = "v1"
	h.commit("a secret larger than the secrets file system", randomText(400<<10))
	r := h.sync()
	if r.OK {
		t.Fatalf("sync = %+v; want a failure", r)
	}
	t.Logf("sync with a full secrets file system: %s", r.Error)
	if !strings.Contains(r.Error, "no space left") || strings.Contains(r.Error, "stalled") {
		t.Errorf("sync error %q; want the full disk named", r.Error)
	}
	if r2 := h.sync(); r2.Result == "refused" {
		t.Errorf("second sync = %+v; a full disk is the host's trouble: the commit must be retried, not refused", r2)
	}
	if got, _ := os.Readlink(h.secretsLink()); got != link {
		t.Errorf("secrets link %s; want %s kept", got, link)
	}
	if b, err := os.ReadFile(filepath.Join(link, "token")); err != nil || string(b) != "small" {
		t.Errorf("token = %q, %v; want the previous value", b, err)
	}
	ents, _ := os.ReadDir(h.secretsRoot())
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || filepath.Join(h.secretsRoot(), names[0]) != link {
		t.Errorf("generations after the failure %v; want only %s", names, link)
	}
	if s := h.mustStatus(); s.Deployed == nil || s.Deployed.Commit != first || !strings.Contains(s.LastError, "secrets") {
		t.Errorf("status deployed %+v, error %q; want %s kept and a secrets error", s.Deployed, s.LastError, first)
	}
}
