package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// queueVersion is the queue file's format version.
const queueVersion = 1

// MaxQueued bounds the queue: past it the oldest status is dropped. Every
// commit and context keeps one entry at most, so this is many commits.
const MaxQueued = 100

// entry is one status waiting to be sent.
type entry struct {
	// Seq orders entries and tells a replaced entry from its successor.
	Seq    uint64       `json:"seq"`
	Commit string       `json:"commit"`
	Status forge.Status `json:"status"`
	Queued time.Time    `json:"queued"`
}

// queue is the durable queue: a JSON file in the state directory,
// rewritten atomically after every change, oldest entry first.
type queue struct {
	Version int     `json:"version"`
	Next    uint64  `json:"next"`
	Entries []entry `json:"entries"`
	path    string
}

// loadQueue reads the queue at path; a missing file is an empty queue.
func loadQueue(path string) (*queue, error) {
	q := &queue{Version: queueVersion, path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return q, nil
	}
	if err != nil {
		return q, fmt.Errorf("reading forge queue: %w", err)
	}
	if err := json.Unmarshal(b, q); err != nil {
		return &queue{Version: queueVersion, path: path}, fmt.Errorf("decoding forge queue %s: %w", path, err)
	}
	if q.Version != queueVersion {
		return &queue{Version: queueVersion, path: path}, fmt.Errorf("forge queue %s has version %d; this agent reads version %d", path, q.Version, queueVersion)
	}
	return q, nil
}

func (q *queue) save() error {
	if q.path == "" {
		return nil // in memory only
	}
	b, err := json.MarshalIndent(q, "", "  ")
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(q.path, append(b, '\n'), 0o600)
}

// add queues s for commit. A status still queued for the same commit and
// context is replaced: the forge only needs the latest. It returns how many
// entries the bound pushed out.
func (q *queue) add(commit string, s forge.Status, now time.Time) int {
	q.remove(func(e entry) bool { return e.Commit == commit && e.Status.Context == s.Context })
	q.Next++
	q.Entries = append(q.Entries, entry{Seq: q.Next, Commit: commit, Status: s, Queued: now})
	over := len(q.Entries) - MaxQueued
	if over <= 0 {
		return 0
	}
	q.Entries = q.Entries[over:]
	return over
}

// remove drops every entry for which match is true and says whether any was.
func (q *queue) remove(match func(entry) bool) bool {
	kept := q.Entries[:0]
	for _, e := range q.Entries {
		if !match(e) {
			kept = append(kept, e)
		}
	}
	removed := len(kept) != len(q.Entries)
	q.Entries = kept
	return removed
}

// find returns the queued entry of commit and context.
func (q *queue) find(commit, context string) (entry, bool) {
	for _, e := range q.Entries {
		if e.Commit == commit && e.Status.Context == context {
			return e, true
		}
	}
	return entry{}, false
}

// removeStaleTemps removes what a write of the queue at path that a kill or
// a power cut interrupted left behind: the rename never happened, so the
// queue itself is whole.
func removeStaleTemps(path string) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
}
