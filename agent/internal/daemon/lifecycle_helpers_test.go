package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// pauser holds an armed step until its context ends, the way a long
// evaluation, build or decryption is still running when the agent is told
// to stop.
type pauser struct {
	armed   atomic.Bool
	reached chan struct{}
	once    sync.Once
}

func newPauser() *pauser { return &pauser{reached: make(chan struct{})} }

func (p *pauser) pause(ctx context.Context) {
	if !p.armed.Load() {
		return
	}
	p.once.Do(func() { close(p.reached) })
	<-ctx.Done()
}

func (p *pauser) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.reached:
	case <-time.After(time.Minute):
		t.Fatal("the paused step was never reached")
	}
}

// pausingNix pauses evaluate or build, then lets the real nix see the
// ended context and fail as it would.
type pausingNix struct {
	daemon.Nix
	step string
	*pauser
}

func (n pausingNix) Evaluate(ctx context.Context, ref, out string) (rebuild.Evaluation, error) {
	if n.step == "evaluate" {
		n.pause(ctx)
	}
	return n.Nix.Evaluate(ctx, ref, out)
}

func (n pausingNix) Build(ctx context.Context, ev rebuild.Evaluation, root string) (string, error) {
	if n.step == "build" {
		n.pause(ctx)
	}
	return n.Nix.Build(ctx, ev, root)
}

// pausingSecrets is a secrets store whose install can be paused; the
// decryption of real SOPS files is tested through the CLI's wiring.
type pausingSecrets struct {
	*pauser
	mu  sync.Mutex
	cur string
	n   int
}

func (s *pausingSecrets) Install(ctx context.Context, system string) (daemon.SecretsResult, error) {
	s.pause(ctx)
	if err := ctx.Err(); err != nil {
		return daemon.SecretsResult{}, fmt.Errorf("decrypting the secrets of %s: %w", system, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur
	s.n++
	s.cur = fmt.Sprint(s.n)
	return daemon.SecretsResult{Generation: s.cur, Previous: prev}, nil
}

func (s *pausingSecrets) Restore(ctx context.Context, system, gen string) (daemon.SecretsResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur
	s.cur = gen
	return daemon.SecretsResult{Generation: gen, Previous: prev}, nil
}

func (s *pausingSecrets) Current() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, nil
}

func (s *pausingSecrets) Clean() error { return nil }

// hangingGit is a repository whose fetch, once armed, never returns and
// ignores its context: a deadlock in the reconcile loop.
type hangingGit struct {
	daemon.Git
	armed   atomic.Bool
	release chan struct{}
}

func (g *hangingGit) Fetch(ctx context.Context) (gitsync.FetchResult, error) {
	if g.armed.Load() {
		<-g.release
		return gitsync.FetchResult{}, errors.New("released")
	}
	return g.Git.Fetch(ctx)
}

// notifyListener receives what the daemon sends to NOTIFY_SOCKET, with
// the time each message arrived.
type notifyListener struct {
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	text string
	at   time.Time
}

func listenNotify(t *testing.T, watchdog time.Duration) *notifyListener {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", fmt.Sprint(watchdog.Microseconds()))
	l := &notifyListener{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, notifyMsg{string(buf[:n]), time.Now()})
			l.mu.Unlock()
		}
	}()
	return l
}

// count returns how many messages equal to text arrived after since.
func (l *notifyListener) count(text string, since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m.text == text && m.at.After(since) {
			n++
		}
	}
	return n
}

// handBuild builds the host's system with opts changed by change, outside
// the agent, and returns its store path: what a person would get from
// `nixos-rebuild build` in their own checkout.
func handBuild(t *testing.T, h *host, change func(o *nixtest.FlakeOptions)) string {
	t.Helper()
	opts := h.opts
	change(&opts)
	dir := t.TempDir()
	if err := nixtest.WriteFlake(dir, opts); err != nil {
		t.Fatal(err)
	}
	n := &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(t)}
	ev, err := n.Evaluate(context.Background(), "path:"+dir, hostName)
	if err != nil {
		t.Fatal(err)
	}
	out, err := n.Build(context.Background(), ev, "")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// handSwitch does what `nixos-rebuild switch` (or test) does by hand.
func handSwitch(t *testing.T, h *host, out, action string) {
	t.Helper()
	n := &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(t)}
	if err := n.Activate(context.Background(), out, rebuild.Activation{Action: action, Profile: h.cfg.Deploy.Profile}); err != nil {
		t.Fatal(err)
	}
}

func setLink(t *testing.T, link, target string) {
	t.Helper()
	os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// runNixEnv runs nix-env on the host's system profile.
func runNixEnv(t *testing.T, h *host, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("nix-env", append([]string{"-p", h.cfg.Deploy.Profile}, args...)...)
	return cmd.CombinedOutput()
}

// setSymlinkTime sets a symlink's own modification time.
func setSymlinkTime(t *testing.T, p string, when time.Time) {
	t.Helper()
	ts := unix.NsecToTimespec(when.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}
