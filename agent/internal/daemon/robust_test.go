package daemon_test

// Regression tests for issue 25 (items 6, 7 and 9): damage and restarts
// that the agent must neither hide nor turn into a verdict.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
)

// Item 6: a journal line that does not decode, followed by whole records,
// is disk damage: the agent refuses to start and says what to do, as for
// a damaged state.json, instead of dropping every record after it.
func TestDamagedJournalRefusesToStart(t *testing.T) {
	h := newHost(t, nil)
	if err := os.MkdirAll(h.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(h.cfg.StateDir, "journal")
	damaged := `{"id":1,"step":"begin","event":"intent"}` + "\n\x00\x00\x00\n" +
		`{"id":1,"step":"activate","event":"intent","unit":"avalanche-switch-1"}` + "\n"
	if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := newDaemon(t, h.cfg).Run(ctx)
	if !errors.Is(err, journal.ErrDamaged) || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("Run with a damaged journal = %v; want ErrDamaged and what to do", err)
	}
	if b, _ := os.ReadFile(path); string(b) != damaged {
		t.Errorf("journal after the refusal = %q; want it untouched", b)
	}
}
