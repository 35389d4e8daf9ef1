// Package daemon is the agent's one wiring point and its reconcile loop.
//
// A pass fetches and verifies the repository, compares what runs with what
// was deployed (drift), and when there is something to do, runs a
// deployment: a flight of named steps (evaluate, build, secrets, profile,
// switch, confirm), each journaled before its side effect and after it
// (package journal). A failure is classified where it arises (package
// fault): only a commit fault condemns the commit; a stop or a crash is no
// verdict, and the next start finishes or undoes the step in flight from
// the journal and from what actually runs (recover.go).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/boot"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
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
	// EvalDir makes commit's tree readable and returns the directory Nix
	// evaluates it through.
	EvalDir(ctx context.Context, commit string) (string, error)
}

// Nix is what the daemon needs to turn a commit into the running system.
type Nix interface {
	Evaluate(ctx context.Context, flakeRef, output string) (rebuild.Evaluation, error)
	Build(ctx context.Context, ev rebuild.Evaluation, gcRoot string) (string, error)
	SetProfile(ctx context.Context, profile, out string) error
	SwitchGeneration(ctx context.Context, profile string, gen int) error
	Activate(ctx context.Context, out string, a rebuild.Activation) error
}

// Daemon is the running agent. Set the fields, then call Run.
type Daemon struct {
	Config  *config.Config
	Log     zerolog.Logger
	Git     Git
	Nix     Nix
	Secrets Secrets // nil: the host has no secrets support wired
	// Source, when set (deploy.source "builder"), names each commit's
	// system from the builder's release instead of evaluating it.
	Source Source
	// Builder, when set (builder.enable), releases each verified main
	// commit for the fleet before this host deploys it.
	Builder Releaser
	// Gate, when set (rollout.wave), holds main commits until the
	// earlier waves ran them (gate.go).
	Gate Gate
	// Lease, when set (rollout.group), is the disruption budget: a
	// deployment takes it before it changes anything (lease.go).
	Lease   Leaser
	Notify  *notify.Notifier
	Version string
	// Now returns the wall-clock time, for people; tests replace it.
	// Deadlines never use it (see Clock).
	Now func() time.Time
	// Clock measures deadlines that survive restarts and clock jumps.
	Clock boot.Clock
	// Hooks lets other parts (metrics, exit node) observe passes.
	Hooks Hooks
	// SelfPath is this program's executable. When a deployment brings a
	// different agent, Run returns ErrRestart. Empty: never.
	SelfPath string
	// OnReload is called with a new valid config after the file changed.
	OnReload func(*config.Config)

	mu       sync.Mutex
	st       *state.State
	flight   *journal.Flight // the open deployment, nil when none
	jrnl     *journal.Journal
	lock     *state.Lock
	phase    string
	stopping bool // told to stop: STATUS says so whatever the step
	// failedBefore are the units already failed when the last switch began.
	failedBefore []string
	nextPoll     time.Time     // when the next pass is due, for status
	delay        time.Duration // how long the loop waits for it
	failures     int           // retried failures in a row, for the backoff
	passes       uint64        // passes finished
	fetched      status.Fetched
	lastErr      string
	force        bool
	waiters      []chan status.SyncResult
	trigger      chan struct{}
	poke         chan struct{} // wakes the newer-commit watcher during a build
	reload       chan struct{}
	extra        func(*status.Status)
	passLock     sync.Mutex // serialises recovery, passes and manual rollbacks
	restart      bool
	// recovered is set once the start-up recovery ran.
	recovered bool
	// nextConfig is a reloaded config waiting for the next pass.
	nextConfig *config.Config
	// subst is the substitution of the build step in builder mode.
	subst *status.Substitution
	// released is the last commit the builder role released, and
	// releasedAt the release branch's head then.
	released, releasedAt string
	// unclean is set when the previous boot ended without the agent
	// stopping (storecheck.go); storeLine is the last store check's line.
	unclean   bool
	storeLine string
	// syncedBefore is when the run that ended uncleanly last synced the
	// store (zero: unknown); runRec is this run's record (runrecord.go).
	syncedBefore time.Time
	runMu        sync.Mutex
	runRec       runRecord
	// drained is the node this agent cordoned and has not uncordoned yet
	// (drain.go), nil when none.
	drained *drainRecord
	// lease is the lease's last view while a flight wants or holds it;
	// leaseStop stops the renewals and waits for one in flight.
	lease     *lease.View
	leaseStop func()
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
	// Substituted is called with the bytes each substituted path added
	// (builder mode).
	Substituted func(bytes int64)
	// Deployment is called when a deployment starts (Result "pending")
	// and when it ends, once each (forge commit statuses).
	Deployment func(ev DeploymentEvent)
	// Background runs in its own goroutine from before the first pass
	// until ctx ends (the forge reporter's sender); Run waits for it.
	Background func(ctx context.Context)
}

// DeploymentEvent is a deployment starting or ending.
type DeploymentEvent struct {
	Flight uint64
	Commit string
	Branch string
	// Reason is commit, drift or rollback.
	Reason string
	// Result is pending at the start; at the end deployed, up-to-date,
	// failed, rolled-back, interrupted or superseded.
	Result string
	// Error and Class say why a deployment did not succeed.
	Error string
	Class string
	Time  time.Time
}

func (d *Daemon) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// ErrRestart asks the caller to exit so the service manager starts the
// agent the new system ships.
var ErrRestart = errors.New("restarting into the newly deployed agent")

// Run takes the state directory, cleans up after any crash, opens the
// local API, reports READY and reconciles until ctx ends. The first thing
// the loop does is finish or undo a deployment a previous process left.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.prepare(); err != nil {
		return err
	}
	defer d.close()
	d.setPhase(status.Starting, "installing secrets")
	ln, err := localapi.Listen(d.Config.SocketPath(), d.Config.API.Group)
	if err != nil {
		return err
	}
	api := &localapi.Server{Backend: d, OperatorGroup: d.Config.API.OperatorGroup}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- api.Serve(ctx, ln) }()
	d.Notify.StartWatchdog(ctx)
	stopWatch := context.AfterFunc(ctx, d.stop)
	defer stopWatch()
	go d.watch(ctx)
	bg := make(chan struct{})
	go func() {
		defer close(bg)
		if d.Hooks.Background != nil {
			d.Hooks.Background(ctx)
		}
	}()
	d.Log.Info().Str("hostname", d.Config.Hostname).Str("output", d.Config.FlakeOutput).
		Str("socket", d.Config.SocketPath()).Str("version", d.Version).Msg("avalanche-agent started")
	d.checkStoreAtStart(ctx)
	d.syncedAtStart()
	d.installCurrentSecrets(ctx)
	d.Notify.Ready()
	d.setPhase(status.Starting, "recovering and fetching")
	d.loop(ctx)
	if stopWatch() {
		d.stop() // leaving for another reason (a new agent binary)
	}
	defer d.markStopped() // a clean stop, for the next start's store check
	cancel()
	<-bg
	if err := <-errc; err != nil {
		return err
	}
	if d.restart {
		return ErrRestart
	}
	return nil
}

// setPhase records the state shown by status and tells systemd.
func (d *Daemon) setPhase(p, detail string) {
	d.mu.Lock()
	d.phase = p
	stopping := d.stopping
	d.mu.Unlock()
	line := p
	if detail != "" {
		line += ": " + detail
	}
	if stopping && p != status.Stopping {
		line = status.Stopping + " (" + line + ")"
	}
	d.Notify.Status(line)
	d.Notify.Beat()
}

// idleStatus sets the STATUS line of an idle agent: what is deployed and
// when the next poll is.
func (d *Daemon) idleStatus() {
	d.mu.Lock()
	idle, dep, next := d.phase == status.Idle, clone(d.st.Deployed), d.nextPoll
	d.mu.Unlock()
	if !idle {
		return
	}
	detail := "nothing deployed yet"
	if dep != nil {
		detail = fmt.Sprintf("%s %s from %s at %s", dep.Result, short(dep.Commit), dep.Branch, dep.Time.Local().Format("2006-01-02 15:04"))
	}
	if !next.IsZero() {
		detail += ", next poll at " + next.Local().Format("15:04:05")
	}
	d.setPhase(status.Idle, detail)
}

// stop marks the agent stopping as soon as it is told to.
func (d *Daemon) stop() {
	d.mu.Lock()
	d.stopping = true
	phase := d.phase
	d.mu.Unlock()
	d.Notify.Stopping()
	d.setPhase(status.Stopping, "finishing "+phase)
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
