// Package state is the agent's durable memory: what was fetched, deployed,
// refused and is pending confirmation. It is one JSON file, written
// atomically (temp file, fsync, rename, fsync of the directory), so a kill -9
// at any moment leaves either the old or the new file, never a mix.
package state

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Version is the state file format version.
const Version = 1

// HistoryLimit bounds the deployment history kept in the state file.
const HistoryLimit = 50

// BadLimit bounds how many refused commits are remembered.
const BadLimit = 200

// State is everything the agent must remember across restarts.
type State struct {
	Version int `json:"version"`
	// Fetched is the tip of each tracked branch after the last successful fetch.
	Fetched map[string]string `json:"fetched,omitempty"`
	// FetchedAt is when the last fetch succeeded.
	FetchedAt time.Time `json:"fetchedAt,omitzero"`
	// Deployed is the deployment the host runs now (the last confirmed one).
	Deployed *Deployment `json:"deployed,omitempty"`
	// LastMain is the last main commit deployed; a new main tip must descend from it.
	LastMain string `json:"lastMain,omitempty"`
	// Base is the last deployment made to last (switch or boot): what a
	// reboot returns to, and what a test deployment is undone to.
	Base *Deployment `json:"base,omitempty"`
	// LastFlight is the ID of the last deployment settled here; the
	// journal holds the steps of the one after it, if any.
	LastFlight uint64 `json:"lastFlight,omitempty"`
	// Pending is written by agents before the deployment journal; a newer
	// agent turns it into a journal record at start-up and drops it.
	Pending *Pending `json:"pending,omitempty"`
	// Drift is set while the running system is not the deployed one.
	Drift *Drift `json:"drift,omitempty"`
	// Interrupted is the last deployment a stop or crash cut short.
	Interrupted *Interruption `json:"interrupted,omitempty"`
	// TestUndone is a testing-branch commit whose test deployment a reboot
	// ended; it is not deployed again by itself.
	TestUndone string `json:"testUndone,omitempty"`
	// Bad lists commits that must not be deployed again (failed or rolled back).
	Bad []BadCommit `json:"bad,omitempty"`
	// LastError is the most recent failure, cleared by the next success.
	LastError *Failure `json:"lastError,omitempty"`
	// Suspended stops deployments (fetching continues) until resumed.
	Suspended bool `json:"suspended,omitempty"`
	// Awaiting is the commit a host in builder mode waits for the release of.
	Awaiting *Awaiting `json:"awaiting,omitempty"`
	// History holds the latest deployments and their results, newest last.
	History []Deployment `json:"history,omitempty"`
}

// Deployment records one deployment attempt and its outcome.
type Deployment struct {
	// Flight is the journal's ID of the attempt.
	Flight     uint64        `json:"flight,omitempty"`
	Commit     string        `json:"commit"`
	Branch     string        `json:"branch,omitempty"`
	Action     string        `json:"action,omitempty"`
	StorePath  string        `json:"storePath,omitempty"`
	Generation int           `json:"generation,omitempty"`
	SecretsGen string        `json:"secretsGeneration,omitempty"`
	Result     string        `json:"result"` // deployed, up-to-date, failed, rolled-back, interrupted
	Error      string        `json:"error,omitempty"`
	Time       time.Time     `json:"time"`
	Duration   time.Duration `json:"duration,omitempty"`
	// Source is where the system came from: local or builder (deploy.source);
	// Fallback is set when builder mode evaluated locally because no
	// release came within deploy.builderTimeout.
	Source   string `json:"source,omitempty"`
	Fallback bool   `json:"fallback,omitempty"`
	// Release is the builder's release the system came from.
	Release *Release `json:"release,omitempty"`
}

// Pending is an activation that still has to be confirmed.
type Pending struct {
	Deployment
	// Previous is what to return to on rollback.
	Previous *Deployment `json:"previous,omitempty"`
	// PreviousSystem is the store path the host ran before the activation.
	PreviousSystem string `json:"previousSystem,omitempty"`
	// Deadline is when the activation counts as failed if not confirmed.
	Deadline time.Time `json:"deadline"`
	// Activated is set once the activation command returned successfully.
	Activated bool `json:"activated,omitempty"`
}

// BadCommit is a commit the agent refuses to deploy again.
type BadCommit struct {
	Commit string    `json:"commit"`
	Phase  string    `json:"phase"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Failure describes the most recent error.
type Failure struct {
	Commit  string    `json:"commit,omitempty"`
	Phase   string    `json:"phase"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
	// Transient failures are retried with backoff; others wait for a new commit.
	Transient bool `json:"transient,omitempty"`
	// Class is the failure class: commit, transient, host (see package fault).
	Class string `json:"class,omitempty"`
}

// Drift is a difference between the system that runs and the one the agent
// deployed, found by comparing them at every pass.
type Drift struct {
	// Running is the system that runs; Expected the deployed one.
	Running  string `json:"running"`
	Expected string `json:"expected"`
	Commit   string `json:"commit"`
	// Since is when the running system was switched to, as far as known.
	Since time.Time `json:"since"`
	// Cause is the likely cause, in plain words.
	Cause string `json:"cause"`
	// Repair says what the agent does about it.
	Repair string `json:"repair"`
}

// Interruption is a deployment that a stop or a crash cut short. It is
// no verdict on the commit, which is tried again.
type Interruption struct {
	Commit string    `json:"commit"`
	Step   string    `json:"step"`
	Time   time.Time `json:"time"`
	// Count is how many times in a row this commit's activation was cut
	// short; a commit whose activation keeps taking the host down is
	// refused at the limit.
	Count int `json:"count,omitempty"`
	// Resolution says what recovery did.
	Resolution string `json:"resolution"`
}

// FloorFile, next to the state file, holds LastMain apart from it: the
// force-push floor must survive a damaged state file that an operator
// moves away, or an older, validly signed main would be deployed.
const FloorFile = "last-main"

// Load reads the state file. A missing file is an empty state, not an
// error. A state without LastMain (a fresh one after the file was moved
// away) takes it from FloorFile.
func Load(path string) (*State, error) {
	s, err := load(path)
	if err != nil {
		return nil, err
	}
	if s.LastMain == "" {
		s.LastMain, err = loadFloor(path)
	}
	return s, err
}

func load(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: Version}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding state %s: %w", path, err)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("state %s has version %d; want %d", path, s.Version, Version)
	}
	return &s, nil
}

// Save writes s to path atomically, then FloorFile when LastMain moved.
func Save(path string, s *State) error {
	s.Version = Version
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	if err := WriteFileAtomic(path, append(b, '\n'), 0o640); err != nil {
		return err
	}
	if floor, err := loadFloor(path); s.LastMain == "" || (err == nil && floor == s.LastMain) {
		return nil
	}
	return WriteFileAtomic(floorPath(path), []byte(s.LastMain+"\n"), 0o640)
}

func floorPath(statePath string) string { return filepath.Join(filepath.Dir(statePath), FloorFile) }

// loadFloor reads FloorFile; "" when there is none.
func loadFloor(statePath string) (string, error) {
	b, err := os.ReadFile(floorPath(statePath))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the last deployed main commit: %w", err)
	}
	c := strings.TrimSpace(string(b))
	if !isHash(c) {
		return "", fmt.Errorf("%s holds %q, not a commit hash (disk damage: put the last main commit deployed here in it)", floorPath(statePath), c)
	}
	return c, nil
}

func isHash(c string) bool {
	if len(c) != 40 && len(c) != 64 {
		return false
	}
	_, err := hex.DecodeString(c)
	return err == nil
}

// WriteFileAtomic writes data to a temporary file next to path, syncs it,
// renames it over path and syncs the directory.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// Record appends d to the history, keeping at most HistoryLimit entries.
func (s *State) Record(d Deployment) {
	s.History = append(s.History, d)
	if n := len(s.History) - HistoryLimit; n > 0 {
		s.History = append([]Deployment(nil), s.History[n:]...)
	}
}

// MarkBad remembers that commit must not be deployed again.
func (s *State) MarkBad(commit, phase, reason string, now time.Time) {
	if s.IsBad(commit) != nil {
		return
	}
	s.Bad = append(s.Bad, BadCommit{Commit: commit, Phase: phase, Reason: reason, Time: now})
	if n := len(s.Bad) - BadLimit; n > 0 {
		s.Bad = append([]BadCommit(nil), s.Bad[n:]...)
	}
}

// IsBad returns the record of commit if it must not be deployed again.
func (s *State) IsBad(commit string) *BadCommit {
	for i := range s.Bad {
		if s.Bad[i].Commit == commit {
			return &s.Bad[i]
		}
	}
	return nil
}

// ForgetBad clears the refusal of commit (sync --force).
func (s *State) ForgetBad(commit string) {
	out := s.Bad[:0]
	for _, b := range s.Bad {
		if b.Commit != commit {
			out = append(out, b)
		}
	}
	s.Bad = out
}
