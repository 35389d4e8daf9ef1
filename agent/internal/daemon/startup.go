package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/notify"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// lockWait is how long a starting agent waits for the state directory's
// lock: a predecessor that just died may hold it a moment longer.
const lockWait = 3 * time.Second

// prepare takes the state directory for this process, loads the state and
// the journal, and removes what a crash can leave behind.
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
	lock, err := state.LockDir(d.Config.StateDir, lockWait)
	if err != nil {
		return err
	}
	d.lock = lock
	if err := d.load(); err != nil {
		lock.Unlock()
		return err
	}
	d.unclean = d.markStarted()
	d.loadDrain()
	d.cleanUp()
	return nil
}

// load reads the state file and the journal.
func (d *Daemon) load() error {
	// A kill -9 during a write leaves its temporary file; the rename never
	// happened, so the state file itself is whole.
	stale, _ := filepath.Glob(filepath.Join(d.Config.StateDir, ".state.json.tmp-*"))
	floorTmp, _ := filepath.Glob(filepath.Join(d.Config.StateDir, "."+state.FloorFile+".tmp-*"))
	for _, f := range append(stale, floorTmp...) {
		os.Remove(f)
	}
	st, err := state.Load(d.Config.StatePath())
	if err != nil {
		return fmt.Errorf("%w (the file is written atomically, so this is disk damage; move it away to start fresh: "+
			"the last main commit deployed, below which no force-pushed main is taken, is kept apart in %s and stays)", err, state.FloorFile)
	}
	j, recs, err := journal.Open(d.journalPath())
	if errors.Is(err, journal.ErrDamaged) {
		return fmt.Errorf("%w (move it away to start: the deployment it describes is then neither finished nor undone; "+
			"the agent compares what runs with what state.json says was deployed and repairs the difference)", err)
	}
	if err != nil {
		return err
	}
	d.st, d.jrnl, d.flight = st, j, journal.Last(recs)
	if st.LastError != nil {
		d.lastErr = describe(st.LastError)
	}
	return d.migratePending()
}

func (d *Daemon) journalPath() string { return filepath.Join(d.Config.StateDir, "journal") }

// close releases what prepare took.
func (d *Daemon) close() {
	if d.jrnl != nil {
		d.jrnl.Close()
	}
	d.lock.Unlock()
}

// migratePending turns the pending record of an agent from before the
// journal into the journal record it stands for.
func (d *Daemon) migratePending() error {
	p := d.st.Pending
	if p == nil {
		return nil
	}
	if !d.flight.Open() {
		f := &journal.Flight{ID: d.st.LastFlight + 1, Reason: "commit", Commit: p.Commit, Branch: p.Branch, Action: p.Action,
			StorePath: p.StorePath, Previous: p.Previous, PreviousSystem: p.PreviousSystem, Secrets: p.SecretsGen,
			Unit: "avalanche-switch-" + short(p.Commit), Started: p.Time, SwitchBy: d.Clock.After(d.Config.Deploy.SwitchTimeout.D())}
		if p.Previous != nil {
			f.PreviousSecrets = p.Previous.SecretsGen
		}
		step := journal.StepSwitch
		if p.Activated {
			step, f.Generation = journal.StepConfirm, p.Generation
		}
		if err := d.record(f, step, journal.Intent); err != nil {
			return err
		}
		d.flight = f
	}
	d.st.Pending = nil
	return state.Save(d.Config.StatePath(), d.st)
}

// cleanUp removes leftovers of a crash: half-written secrets generations
// and temporary links, and GC roots no deployment needs. Each removal is
// idempotent, so a crash in the middle of it is harmless.
func (d *Daemon) cleanUp() {
	if d.Secrets != nil {
		if err := d.Secrets.Clean(); err != nil {
			d.Log.Warn().Err(err).Msg("cleaning up secrets")
		}
	}
	d.pruneGCRoots()
}

// pruneGCRoots keeps the newest roots and those of every system the agent
// may still switch to or back to.
func (d *Daemon) pruneGCRoots() {
	pinned := []string{resolve(d.Config.Deploy.CurrentSystem)}
	for _, dep := range []*state.Deployment{d.st.Deployed, d.st.Base} {
		if dep != nil {
			pinned = append(pinned, dep.StorePath)
		}
	}
	if f := d.flight; f.Open() {
		pinned = append(pinned, f.StorePath, f.PreviousSystem)
	}
	if err := rebuild.PruneGCRoots(d.gcRootDir(), d.Config.Deploy.KeepGCRoots, pinned...); err != nil {
		d.Log.Warn().Err(err).Msg("pruning GC roots")
	}
}

func (d *Daemon) gcRootDir() string { return filepath.Join(d.Config.StateDir, "gcroots") }

// installCurrentSecrets installs the running system's secrets at start-up:
// after a reboot the RAM filesystem is empty. While a deployment is open
// and its secrets are in place, recovery decides which generation stays.
// It holds the pass lock: the local API already listens, and a rollback
// asked for now must not restore a generation this install then replaces.
func (d *Daemon) installCurrentSecrets(ctx context.Context) {
	if d.Secrets == nil {
		return
	}
	d.passLock.Lock()
	defer d.passLock.Unlock()
	cur := resolve(d.Config.Deploy.CurrentSystem)
	if cur == "" {
		return
	}
	if gen, _ := d.Secrets.Current(); gen != "" && d.flight.Open() {
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

// resolve follows a symlink chain to its final target; "" when absent.
func resolve(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return r
}
