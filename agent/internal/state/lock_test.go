package state

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("LockDir = %v", err)
	}
	// A second holder, even in the same process (another open file
	// description), is refused and told who holds it.
	_, err = LockDir(dir, 100*time.Millisecond)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second LockDir = %v; want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockDir(dir, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("LockDir after Unlock = %v", err)
	}
	l2.Unlock()
}
