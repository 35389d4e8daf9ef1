package journal

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, recs, err := Open(path)
	if err != nil || len(recs) != 0 {
		t.Fatalf("Open(new) = %v, %d records; want none", err, len(recs))
	}
	want := []Flight{
		{ID: 1, Step: StepBegin, Event: Intent, Commit: "c1", Action: "switch"},
		{ID: 1, Step: StepBuild, Event: Done, Commit: "c1", Action: "switch", StorePath: "/nix/store/x"},
	}
	for _, f := range want {
		if err := j.Append(f); err != nil {
			t.Fatalf("Append = %v", err)
		}
	}
	j.Close()
	j, recs, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if diff := cmp.Diff(want, recs); diff != "" {
		t.Errorf("records after reopening (-want +got):\n%s", diff)
	}
	if last := Last(recs); last == nil || last.Step != StepBuild || !last.Open() {
		t.Errorf("Last = %+v; want the open build record", last)
	}
}

// A power cut in the middle of a write leaves a torn last line: it is an
// intent whose side effect never began, and is dropped for good.
func TestTornTailIsCut(t *testing.T) {
	for name, tail := range map[string]string{
		"half a line":         `{"id":1,"step":"activ`,
		"garbage with a line": "\x00\x00\x00\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal")
			j, _, _ := Open(path)
			j.Append(Flight{ID: 1, Step: StepBegin, Event: Intent})
			j.Close()
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(tail)
			f.Close()
			j, recs, err := Open(path)
			if err != nil || len(recs) != 1 || recs[0].Step != StepBegin {
				t.Fatalf("Open after a torn write = %v, %+v; want the one whole record", err, recs)
			}
			j.Append(Flight{ID: 1, Step: StepEvaluate, Event: Intent})
			j.Close()
			recs, err = Read(path)
			if err != nil || len(recs) != 2 || recs[1].Step != StepEvaluate {
				t.Errorf("Read after appending past the cut = %v, %+v; want begin then evaluate", err, recs)
			}
		})
	}
}

func TestReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, _, _ := Open(path)
	defer j.Close()
	j.Append(Flight{ID: 3, Step: StepEnd, Event: Done, Result: "deployed"})
	if err := j.Reset(); err != nil {
		t.Fatal(err)
	}
	j.Append(Flight{ID: 4, Step: StepBegin, Event: Intent})
	recs, err := Read(path)
	if err != nil || len(recs) != 1 || recs[0].ID != 4 {
		t.Errorf("records after Reset and one Append = %v, %+v; want only flight 4", err, recs)
	}
	if (&Flight{Step: StepEnd}).Open() || (*Flight)(nil).Open() {
		t.Error("an ended or absent flight reads as open")
	}
}

func TestReadMissing(t *testing.T) {
	recs, err := Read(filepath.Join(t.TempDir(), "none"))
	if err != nil || recs != nil {
		t.Errorf("Read(missing) = %v, %v; want nothing", recs, err)
	}
}

// Damage that whole records follow is not a torn write: Open refuses the
// journal, leaves the file as it is, and says what happened, instead of
// dropping the damaged line and every record after it.
func TestDamageBeforeWholeRecordsIsRefused(t *testing.T) {
	for name, damage := range map[string]string{
		"garbage line":      "\x00\x00\x00\n",
		"half a record":     `{"id":1,"step":"activ` + "\n",
		"flipped character": `{"id":1,"step":"build","event":"done"]` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal")
			begin, _ := json.Marshal(Flight{ID: 1, Step: StepBegin, Event: Intent})
			activate, _ := json.Marshal(Flight{ID: 1, Step: StepSwitch, Event: Intent, Unit: "avalanche-switch-1"})
			if err := os.WriteFile(path, []byte(string(begin)+"\n"+damage+string(activate)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)

			_, recs, err := Open(path)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("Open(damaged) = %+v, %v; want ErrDamaged naming line 2", recs, err)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Errorf("Open(damaged) changed the file:\n%q\nwant it untouched\n%q", after, before)
			}
			if _, err := Read(path); !errors.Is(err, ErrDamaged) {
				t.Errorf("Read(damaged) = %v; want ErrDamaged", err)
			}
		})
	}
}

// An Append that fails halfway (disk full) is cut back, so the records
// written once space is free again are read at the next start.
func TestFailedAppendIsCutBack(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mounting a tmpfs (the journal tests run as root, as .ci/test does): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "journal")
	j, _, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	j.Append(Flight{ID: 1, Step: StepBegin, Event: Intent})
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 40<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	err = j.Append(Flight{ID: 1, Step: StepBuild, Event: Failed, Cause: strings.Repeat("x", 64<<10)})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append(64 KiB) on a full disk = %v; want ENOSPC", err)
	}
	os.Remove(filler)
	if err := j.Append(Flight{ID: 1, Step: StepEnd, Event: Done, Result: "interrupted"}); err != nil {
		t.Fatalf("Append once space is free = %v", err)
	}
	_, recs, err := Open(path)
	var steps []string
	for _, r := range recs {
		steps = append(steps, r.Step)
	}
	if want := []string{StepBegin, StepEnd}; err != nil || !cmp.Equal(steps, want) {
		t.Errorf("Open after a failed append = %v, steps %q; want %q", err, steps, want)
	}
}
