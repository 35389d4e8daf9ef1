package state_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	dep := state.Deployment{Commit: "c1", Branch: "main", Action: "switch", StorePath: "/nix/store/x-system",
		Generation: 7, SecretsGen: "3", Result: "deployed", Time: now, Duration: 90 * time.Second}
	want := &state.State{
		Fetched:   map[string]string{"main": "c2", "testing/eagle": "c3"},
		FetchedAt: now,
		Deployed:  &dep,
		LastMain:  "c1",
		Pending: &state.Pending{Deployment: state.Deployment{Commit: "c2", Result: "pending", Time: now},
			Previous: &dep, PreviousSystem: "/nix/store/x-system", Deadline: now.Add(time.Minute), Activated: true},
		Bad:       []state.BadCommit{{Commit: "c0", Phase: "build", Reason: "boom", Time: now}},
		LastError: &state.Failure{Commit: "c0", Phase: "build", Message: "boom", Time: now, Transient: true},
		Suspended: true,
		History:   []state.Deployment{dep},
	}
	if err := state.Save(path, want); err != nil {
		t.Fatalf("Save(%q) = %v", path, err)
	}
	got, err := state.Load(path)
	if err != nil {
		t.Fatalf("Load(%q) = %v", path, err)
	}
	if want.Version != state.Version {
		t.Errorf("Save did not set Version: %d; want %d", want.Version, state.Version)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load(%q) after Save mismatch (-want +got):\n%s", path, diff)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("state file mode = %v; want 0640", fi.Mode().Perm())
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.json")
	st, err := state.Load(path)
	if err != nil {
		t.Fatalf("Load(%q) = %v; want an empty state", path, err)
	}
	if diff := cmp.Diff(&state.State{Version: state.Version}, st); diff != "" {
		t.Errorf("Load(%q) mismatch (-want +got):\n%s", path, diff)
	}
}

func TestLoadDamagedNamesTheFile(t *testing.T) {
	valid := `{"version": 1, "lastMain": "abc"}`
	tests := []struct {
		name, content, want string
	}{
		{"truncated", valid[:len(valid)/2], "decoding state"},
		{"garbage", "\x00\x01 not json", "decoding state"},
		{"empty", "", "decoding state"},
		{"wrong version", `{"version": 99}`, "version 99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := state.Load(path)
			if err == nil {
				t.Fatalf("Load(%q) = %+v, nil; want an error", path, st)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%q) = %v; want an error naming the file and saying %q", path, err, tt.want)
			}
		})
	}
}

func TestWriteFileAtomicLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for i := range 20 {
		data := []byte(strings.Repeat("x", i*100))
		if err := state.WriteFileAtomic(path, data, 0o600); err != nil {
			t.Fatalf("WriteFileAtomic(%q) = %v", path, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(data) {
			t.Fatalf("ReadFile(%q) = %d bytes, %v; want %d bytes", path, len(got), err, len(data))
		}
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "state.json" {
		t.Errorf("directory holds %q; want only state.json", names)
	}

	// A rename that fails (the target is a non-empty directory) removes the temp file too.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := state.WriteFileAtomic(blocked, []byte("y"), 0o600); err == nil || !strings.Contains(err.Error(), blocked) {
		t.Errorf("WriteFileAtomic(%q) = %v; want an error naming it", blocked, err)
	}
	if names := dirNames(t, dir); len(names) != 2 {
		t.Errorf("directory holds %q after a failed write; want state.json and blocked only", names)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestHistoryBounded(t *testing.T) {
	var s state.State
	total := state.HistoryLimit + 17
	for i := range total {
		s.Record(state.Deployment{Commit: strconv.Itoa(i)})
	}
	if len(s.History) != state.HistoryLimit {
		t.Fatalf("len(History) = %d; want %d", len(s.History), state.HistoryLimit)
	}
	first, last := s.History[0].Commit, s.History[len(s.History)-1].Commit
	if first != strconv.Itoa(total-state.HistoryLimit) || last != strconv.Itoa(total-1) {
		t.Errorf("History spans %s..%s; want the newest %d, %d..%d", first, last,
			state.HistoryLimit, total-state.HistoryLimit, total-1)
	}
}

func TestBadBoundedAndForgotten(t *testing.T) {
	var s state.State
	now := time.Now()
	total := state.BadLimit + 5
	for i := range total {
		s.MarkBad(strconv.Itoa(i), "build", "boom", now)
	}
	s.MarkBad(strconv.Itoa(total-1), "eval", "again", now) // already known: not added twice
	if len(s.Bad) != state.BadLimit {
		t.Fatalf("len(Bad) = %d; want %d", len(s.Bad), state.BadLimit)
	}
	if s.IsBad("0") != nil {
		t.Errorf("IsBad(%q) = %+v; want the oldest record dropped", "0", s.IsBad("0"))
	}
	newest := strconv.Itoa(total - 1)
	if b := s.IsBad(newest); b == nil || b.Phase != "build" {
		t.Errorf("IsBad(%q) = %+v; want the first record (phase build)", newest, b)
	}
	s.ForgetBad(newest)
	if s.IsBad(newest) != nil || len(s.Bad) != state.BadLimit-1 {
		t.Errorf("after ForgetBad(%q): IsBad = %+v, len = %d; want nil, %d", newest, s.IsBad(newest), len(s.Bad), state.BadLimit-1)
	}
}

// The force-push floor is kept apart from the state file: a state file
// moved away (damage) leaves it, and a fresh state takes it up.
func TestFloorOutlivesTheStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	main := strings.Repeat("ab", 20)
	if err := state.Save(path, &state.State{LastMain: main}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".damaged"); err != nil {
		t.Fatal(err)
	}
	st, err := state.Load(path)
	if err != nil || st.LastMain != main {
		t.Fatalf("Load after the state file was moved away = %+v, %v; want lastMain %s", st, err, main)
	}
	os.WriteFile(filepath.Join(dir, state.FloorFile), []byte("\x00\x00garbage\n"), 0o640)
	if _, err := state.Load(path); err == nil || !strings.Contains(err.Error(), "not a commit hash") {
		t.Errorf("Load with a damaged %s = %v; want an error saying so", state.FloorFile, err)
	}
}
