// Package daemon is the agent's one wiring point and its reconcile loop:
// fetch, verify, evaluate, build, install secrets, activate, confirm or roll
// back, record. Each pass is an ordered list of steps; a failure is either a
// property of the commit (recorded, not retried) or transient (backed off).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/localapi"
	"github.com/avalanche-fleet/avalanche/agent/internal/notify"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// Git is what the daemon needs from the repository.
type Git interface {
	Fetch(ctx context.Context) (gitsync.FetchResult, error)
	IsAncestor(ctx context.Context, ancestor, commit string) (bool, error)
	VerifyCommit(ctx context.Context, commit string, s gitsync.Signers) (string, error)
}

// Nix is what the daemon needs to turn a commit into the running system.
type Nix interface {
	Evaluate(ctx context.Context, flakeRef, output string) (rebuild.Evaluation, error)
	Build(ctx context.Context, ev rebuild.Evaluation, gcRoot string) (string, error)
	Activate(ctx context.Context, out string, a rebuild.Activation) error
}

// Daemon is the running agent. Set the fields, then call Run.
type Daemon struct {
	Config  *config.Config
	Log     zerolog.Logger
	Git     Git
	Nix     Nix
	Secrets Secrets // nil: the host has no secrets support wired
	Notify  *notify.Notifier
	Version string
	// Now returns the current time; tests replace it.
	Now func() time.Time
	// Hooks lets other parts (metrics, exit node) observe passes.
	Hooks Hooks
	// SelfPath is this program's executable. When a deployment brings a
	// different agent, Run returns ErrRestart. Empty: never.
	SelfPath string
	// OnReload is called with a new valid config after the file changed.
	OnReload func(*config.Config)

	mu       sync.Mutex
	st       *state.State
	phase    string
	nextPoll time.Time
	passes   uint64
	fetched  status.Fetched
	lastErr  string
	force    bool
	waiters  []chan status.SyncResult
	trigger  chan struct{}
	poke     chan struct{} // wakes the newer-commit watcher during a build
	reload   chan struct{}
	extra    func(*status.Status)
	passLock sync.Mutex // serialises passes with manual rollbacks
	restart  bool
	// nextConfig is a reloaded config waiting for the next pass.
	nextConfig *config.Config
}

// Hooks are optional observers called by the daemon.
type Hooks struct {
	// Phase is called after each phase with its result and duration.
	Phase func(phase, result string, d time.Duration)
	// Fetch is called once per fetch with unchanged, updated or error.
	Fetch func(result string)
	// Pass is called after every pass with the status snapshot.
	Pass func(s status.Status)
	// AfterPass runs extra per-pass duties (the exit node role).
	AfterPass func(ctx context.Context)
}

func (d *Daemon) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Run loads state, opens the local API, reports READY and reconciles until
// ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.prepare(); err != nil {
		return err
	}
	ln, err := localapi.Listen(d.Config.SocketPath(), d.Config.API.Group)
	if err != nil {
		return err
	}
	api := &localapi.Server{Backend: d, OperatorGroup: d.Config.API.OperatorGroup}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- api.Serve(ctx, ln) }()
	go d.Notify.Watchdog(ctx)
	go d.watch(ctx)
	d.Log.Info().Str("hostname", d.Config.Hostname).Str("output", d.Config.FlakeOutput).
		Str("socket", d.Config.SocketPath()).Str("version", d.Version).Msg("avalanche-agent started")
	d.installCurrentSecrets(ctx)
	d.Notify.Ready()
	d.loop(ctx)
	d.Notify.Stopping()
	cancel()
	if err := <-errc; err != nil {
		return err
	}
	if d.restart {
		return ErrRestart
	}
	return nil
}

// ErrRestart asks the caller to exit so the service manager starts the
// agent the new system ships.
var ErrRestart = errors.New("restarting into the newly deployed agent")

// prepare creates directories and loads the state file.
func (d *Daemon) prepare() error {
	d.trigger = make(chan struct{}, 1)
	d.poke = make(chan struct{}, 1)
	d.reload = make(chan struct{}, 1)
	if d.Notify == nil {
		d.Notify = &notify.Notifier{}
	}
	if err := os.MkdirAll(d.Config.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	if err := os.MkdirAll(d.Config.RuntimeDir, 0o755); err != nil {
		return fmt.Errorf("creating runtime dir: %w", err)
	}
	// A kill -9 during a write leaves its temporary file; the rename never
	// happened, so the state file itself is whole.
	stale, _ := filepath.Glob(filepath.Join(d.Config.StateDir, ".state.json.tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
	st, err := state.Load(d.Config.StatePath())
	if err != nil {
		return fmt.Errorf("%w (the file is written atomically, so this is disk damage; move it away to start fresh)", err)
	}
	d.st = st
	if st.LastError != nil {
		d.lastErr = describe(st.LastError)
	}
	return nil
}

// setPhase records the state shown by status and tells systemd.
func (d *Daemon) setPhase(p, detail string) {
	d.mu.Lock()
	d.phase = p
	d.mu.Unlock()
	line := p
	if detail != "" {
		line += ": " + detail
	}
	d.Notify.Status(line)
}

// save writes the state file; a failure to write is logged loudly because
// the host keeps running what it runs.
func (d *Daemon) save() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := state.Save(d.Config.StatePath(), d.st); err != nil {
		d.Log.Error().Err(err).Msg("saving state")
		return err
	}
	return nil
}

// update changes the state under the lock.
func (d *Daemon) update(f func(st *state.State)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d.st)
}

func describe(f *state.Failure) string {
	if f == nil {
		return ""
	}
	s := f.Phase + " failed"
	if f.Commit != "" {
		s += " for " + short(f.Commit)
	}
	return s + ": " + f.Message
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// errStalled marks failures that belong to the commit: not retried.
var errStalled = errors.New("stalled")

// installCurrentSecrets installs the running system's secrets at start-up:
// after a reboot the RAM filesystem is empty.
func (d *Daemon) installCurrentSecrets(ctx context.Context) {
	if d.Secrets == nil {
		return
	}
	cur := resolve(d.Config.Deploy.CurrentSystem)
	if cur == "" {
		return
	}
	r, err := d.Secrets.Install(ctx, cur)
	if err != nil {
		d.Log.Error().Err(err).Str("phase", "secrets").Str("storePath", cur).Msg("installing the running system's secrets")
		return
	}
	if r.Generation != "" {
		d.Log.Info().Str("phase", "secrets").Str("generation", r.Generation).Msg("installed the running system's secrets")
	}
}
