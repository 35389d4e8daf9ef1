package daemon

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// runRecordFile tells the next start how this run ended: its boot,
// whether the agent stopped cleanly, and when it last made the store
// durable.
const runRecordFile = "run.json"

type runRecord struct {
	BootID string `json:"bootId"`
	Clean  bool   `json:"clean"`
	// SyncedAt is when the store was last synced to stable storage (Unix
	// seconds, by the machine's clock then), 0 if unknown: after a power
	// cut, only what Nix registered since may have lost its files.
	SyncedAt int64 `json:"syncedAt,omitempty"`
}

// clockMargin widens the window of paths checked after an unclean end
// against a clock that was set back (a Pi's clock before NTP).
const clockMargin = 10 * time.Minute

// bootID identifies this boot of the machine.
var bootID = func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// markStarted reads how the previous run ended and records this one as
// running (durably, so a cut cannot bring back an old "clean"). The end
// was unclean when the previous run did not stop cleanly and the machine
// booted since: a power cut or a crash of the machine, which can lose what
// was in the page cache. An agent killed within the same boot lost nothing.
// The previous run's last sync is kept until this run has checked the
// store and synced it again (syncedAtStart): a cut during the check leaves
// the same window to check at the next start.
func (d *Daemon) markStarted() (unclean bool) {
	path := filepath.Join(d.Config.StateDir, runRecordFile)
	stale, _ := filepath.Glob(filepath.Join(d.Config.StateDir, "."+runRecordFile+".tmp-*")) // a write a kill cut short
	for _, f := range stale {
		os.Remove(f)
	}
	var prev runRecord
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// First start, or an agent from before the record: nothing to go by.
	case err != nil || json.Unmarshal(b, &prev) != nil:
		unclean = true // a damaged record is itself a sign
	default:
		unclean = !prev.Clean && prev.BootID != bootID()
	}
	if unclean && prev.SyncedAt > 0 {
		d.syncedBefore = time.Unix(prev.SyncedAt, 0)
	}
	d.writeRunRecord(runRecord{SyncedAt: prev.SyncedAt})
	return unclean
}

// markStopped records a clean stop.
func (d *Daemon) markStopped() {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	d.runRec.Clean = true
	d.writeRunRecord(d.runRec)
}

// markSynced records that the store was just synced to stable storage.
func (d *Daemon) markSynced(at time.Time) {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	d.runRec.SyncedAt = at.Unix()
	d.writeRunRecord(d.runRec)
}

// syncedAtStart syncs the store once the start-up check is done, so that
// the next unclean end is judged from here, not from the previous run.
func (d *Daemon) syncedAtStart() {
	at := time.Now()
	if _, err := rebuild.Syncfs(rebuild.DBDir); err != nil {
		d.Log.Warn().Err(err).Str("phase", "store").Msg("syncing the Nix store at start-up")
		return
	}
	d.markSynced(at)
}

func (d *Daemon) writeRunRecord(r runRecord) {
	r.BootID = bootID()
	d.runRec = r
	b, _ := json.Marshal(r)
	if err := state.WriteFileAtomic(filepath.Join(d.Config.StateDir, runRecordFile), b, 0o600); err != nil {
		d.Log.Warn().Err(err).Msg("recording how the agent runs")
	}
}
