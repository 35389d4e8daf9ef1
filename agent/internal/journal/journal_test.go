package journal

import (
	"os"
	"path/filepath"
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
