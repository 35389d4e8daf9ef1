// Package journal is the agent's write-ahead log of deployments. Every
// step of a deployment (a "flight") appends the whole flight record, fsynced,
// before its side effect (event "intent") and after it ("done" or
// "failed"). After any crash, the last record says which step was in flight
// and everything needed to finish or undo it: the target, what ran before,
// the secrets generations, the switch unit and the deadlines.
//
// A record is one JSON line. A power cut can leave a torn last line; it is
// the intent of a step whose side effect never started (the side effect
// waits for the fsync), so Open drops it. An undecodable line followed by
// others is not a torn write but damage: Open refuses it (ErrDamaged)
// rather than lose the records after it. An Append that fails halfway
// (disk full) cuts the file back to its last whole record.
package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/boot"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
)

// Steps of a flight, in order. Rollback replaces the rest after a failure.
const (
	StepBegin    = "begin"
	StepEvaluate = "evaluate"
	StepBuild    = "build"
	// StepLease takes the disruption budget's lease (rollout.group) before
	// anything on the host changes; the end of the flight releases it.
	StepLease    = "lease"
	StepSecrets  = "secrets"
	StepDrain    = "drain" // cordon and drain the k3s node (deploy.drain)
	StepProfile  = "profile"
	StepSwitch   = "activate"
	StepConfirm  = "confirm"
	StepRollback = "rollback"
	StepEnd      = "end"
)

// Events of a step.
const (
	Intent = "intent"
	Done   = "done"
	Failed = "failed"
)

// Flight is one deployment attempt: a commit's system made current, a
// drift repaired, or a manual rollback. Each journal line is a snapshot of
// it at one step's event.
type Flight struct {
	ID    uint64    `json:"id"`
	Step  string    `json:"step"`
	Event string    `json:"event"`
	Time  time.Time `json:"time"`
	// Reason says why the flight started: commit, drift, rollback.
	Reason string `json:"reason"`
	Commit string `json:"commit"`
	Branch string `json:"branch,omitempty"`
	Action string `json:"action"`
	// Source is where the target comes from: local (evaluated and built
	// here) or builder (the builder's release, substituted); Fallback is set
	// when a host in builder mode evaluates because no release came within
	// deploy.builderTimeout.
	Source   string `json:"source,omitempty"`
	Fallback bool   `json:"fallback,omitempty"`
	// Release is the builder's release that names the target (source builder).
	Release *state.Release `json:"release,omitempty"`
	// StorePath is the target system, once evaluated or resolved.
	StorePath string `json:"storePath,omitempty"`
	GCRoot    string `json:"gcRoot,omitempty"`
	// Previous is the deployment that ran when the flight began.
	Previous *state.Deployment `json:"previous,omitempty"`
	// PreviousSystem is the system that ran when the flight began.
	PreviousSystem string `json:"previousSystem,omitempty"`
	// PreviousGeneration is the profile generation before the flight.
	PreviousGeneration int `json:"previousGeneration,omitempty"`
	// Generation is the profile generation the profile step made.
	Generation int `json:"generation,omitempty"`
	// Secrets is the generation installed for the target; PreviousSecrets
	// the one current before (what a rollback restores).
	Secrets         string   `json:"secrets,omitempty"`
	PreviousSecrets string   `json:"previousSecrets,omitempty"`
	RestartUnits    []string `json:"restartUnits,omitempty"`
	ReloadUnits     []string `json:"reloadUnits,omitempty"`
	// DrvPath is the target's derivation, once evaluated.
	DrvPath string `json:"drvPath,omitempty"`
	// Unit is the transient systemd unit that runs switch-to-configuration;
	// RollbackUnit the one that switches back.
	Unit         string `json:"unit,omitempty"`
	RollbackUnit string `json:"rollbackUnit,omitempty"`
	// FailedBefore are the units that had failed before the switch: host
	// trouble, never held against the commit.
	FailedBefore []string `json:"failedBefore,omitempty"`
	// SwitchBy and ConfirmBy are deadlines on the boot clock. RollbackBy
	// is the deadline of the rollback's own switch, set when the rollback
	// step is journaled: a rollback begins long after SwitchBy (after the
	// confirm deadline, say), and must not be judged against it.
	SwitchBy   boot.Instant `json:"switchBy,omitzero"`
	ConfirmBy  boot.Instant `json:"confirmBy,omitzero"`
	RollbackBy boot.Instant `json:"rollbackBy,omitzero"`
	// Cause is why the flight failed or rolls back; Class is the failure
	// class (commit, transient, host, shutdown, superseded); FailedStep the
	// step that failed.
	Cause      string `json:"cause,omitempty"`
	Class      string `json:"class,omitempty"`
	FailedStep string `json:"failedStep,omitempty"`
	// RollbackError is why a rollback itself failed.
	RollbackError string `json:"rollbackError,omitempty"`
	// Result is set by the end step: deployed, up-to-date, failed,
	// rolled-back, interrupted.
	Result string `json:"result,omitempty"`
	// Lease is the disruption budget's lease the flight took (rollout.group).
	Lease *Lease `json:"lease,omitempty"`
	// Started is when the flight began (wall clock, for people).
	Started time.Time `json:"started"`
}

// Lease is a flight's claim on its group's lease: taken when the lease
// step's intent is journaled (the claim may be posted from then on), held
// from its done, released by the end of the flight. A recovery that finds
// it taken and not released renews it while it settles the flight, then
// releases it.
type Lease struct {
	Group string `json:"group"`
	// Seq is the claim's place in the group's queue, 0 before the forge
	// answered.
	Seq int64 `json:"seq,omitempty"`
	// Held is set once the claim held the lease.
	Held bool `json:"held,omitempty"`
	// Released is set once the release was posted; Kept instead when a
	// reboot follows, which the lease covers until it expires.
	Released bool `json:"released,omitempty"`
	Kept     bool `json:"kept,omitempty"`
}

// Open reports whether the flight has not ended.
func (f *Flight) Open() bool { return f != nil && f.Step != StepEnd }

// Journal is an append-only file of flight records.
type Journal struct {
	path string
	f    *os.File
	// size is the end of the last whole record: where the next one goes,
	// and what a failed append is cut back to.
	size int64
	// torn is set while a failed append's bytes could not be cut off; no
	// record is written after them until they are.
	torn bool
}

// ErrDamaged marks a journal with an undecodable line that whole records
// follow: disk damage, not a torn write, and its records cannot be
// trusted to be all there is.
var ErrDamaged = errors.New("journal is damaged")

// Open opens (creating) the journal at path and returns its records. A
// torn last line is cut off the file; an undecodable line before the last
// is an error wrapping ErrDamaged, and the file is left as it is.
func Open(path string) (*Journal, []Flight, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening journal: %w", err)
	}
	recs, good, err := read(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading journal %s: %w", path, err)
	}
	if err := cut(f, good); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("repairing journal %s: %w", path, err)
	}
	return &Journal{path: path, f: f, size: good}, recs, nil
}

// read decodes whole lines and returns the offset after the last good one.
// Only the last line may be undecodable (torn by a power cut: its record
// was never fsynced, so nothing acted on it); one that other lines follow
// is damage.
func read(r io.Reader) ([]Flight, int64, error) {
	var recs []Flight
	var good int64
	var bad error // the first undecodable line, while nothing follows it
	badLine := 0
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return recs, good, nil // the last line, if any, is torn
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		if bad != nil {
			return nil, 0, fmt.Errorf("%w: line %d (byte %d) does not decode (%w) and %d more line(s) follow it; "+
				"a power cut tears only the last line, so this is disk damage", ErrDamaged, badLine, good, bad, countLines(br))
		}
		if errors.Is(err, io.EOF) {
			return recs, good, nil // no newline: torn
		}
		var rec Flight
		if derr := json.Unmarshal(bytes.TrimSpace(line), &rec); derr != nil {
			bad, badLine = derr, n
			continue
		}
		recs = append(recs, rec)
		good += int64(len(line))
	}
}

// countLines counts the line just read and those left in br, for the
// damage message.
func countLines(br *bufio.Reader) int {
	n := 1
	for {
		if _, err := br.ReadBytes('\n'); err != nil {
			return n
		}
		n++
	}
}

func cut(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == size {
		return nil
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// Append writes rec as one line and waits until it is on disk. When the
// write or the sync fails (disk full, I/O error), the file is cut back to
// the previous record, so a later record never follows a partial line.
func (j *Journal) Append(rec Flight) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding journal record: %w", err)
	}
	if j.torn {
		if err := j.cutBack(); err != nil {
			return fmt.Errorf("cutting a failed write off journal %s: %w", j.path, err)
		}
	}
	line := append(b, '\n')
	if _, err := j.f.WriteAt(line, j.size); err != nil {
		return j.failed(fmt.Errorf("writing journal %s: %w", j.path, err))
	}
	if err := j.f.Sync(); err != nil {
		return j.failed(fmt.Errorf("syncing journal %s: %w", j.path, err))
	}
	j.size += int64(len(line))
	return nil
}

// failed cuts what a failed append may have written off the file; when
// even that fails, the next Append tries again before writing.
func (j *Journal) failed(err error) error {
	j.torn = true
	if cerr := j.cutBack(); cerr != nil {
		return errors.Join(err, fmt.Errorf("cutting the failed write off: %w", cerr))
	}
	return err
}

func (j *Journal) cutBack() error {
	if err := j.f.Truncate(j.size); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	j.torn = false
	return nil
}

// Reset empties the journal once its flights are settled in the state file.
func (j *Journal) Reset() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying journal %s: %w", j.path, err)
	}
	j.size, j.torn = 0, false
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing journal %s: %w", j.path, err)
	}
	return nil
}

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }

// Last returns the newest record, or nil.
func Last(recs []Flight) *Flight {
	if len(recs) == 0 {
		return nil
	}
	f := recs[len(recs)-1]
	return &f
}

// Read returns the records of the journal at path without opening it for
// writing (status of a stopped agent). A missing journal has none.
func Read(path string) ([]Flight, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading journal: %w", err)
	}
	defer f.Close()
	recs, _, err := read(f)
	return recs, err
}
