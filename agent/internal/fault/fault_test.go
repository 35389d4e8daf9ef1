package fault

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

func TestClass(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		err  error
		want Class
	}{
		{base, Transient},
		{New(Commit, base), Commit},
		{fmt.Errorf("building: %w", New(Host, base)), Host},
		{New(Transient, New(Commit, base)), Commit}, // the first, innermost class stays
	}
	for _, tt := range tests {
		if got := Of(tt.err); got != tt.want {
			t.Errorf("Of(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
	if New(Commit, nil) != nil {
		t.Error("New(Commit, nil) != nil")
	}
	if !errors.Is(New(Host, fs.ErrNotExist), fs.ErrNotExist) {
		t.Error("a classified error hides what it wraps")
	}
	if !Commit.Verdict() || Transient.Verdict() || Shutdown.Retried() || !Host.Retried() {
		t.Error("verdicts or retries wrong")
	}
	if !IsHostTrouble(fmt.Errorf("write: %w", syscall.ENOSPC)) || IsHostTrouble(base) {
		t.Error("IsHostTrouble wrong")
	}
}
