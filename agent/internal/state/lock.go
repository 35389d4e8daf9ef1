package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked reports that another agent holds the state directory.
var ErrLocked = errors.New("state directory is in use")

// Lock is the exclusive hold of one agent on a state directory: a second
// agent on the same directory would fight over the repository, the state
// file and the socket.
type Lock struct{ f *os.File }

// LockDir takes the lock file in dir and writes this process's PID into it.
// The kernel drops the lock when the process dies, however it dies; a
// process that just died may hold it a moment longer (a child between fork
// and exec still shares its file), so LockDir tries for up to wait. When
// another process holds it, the error wraps ErrLocked and names its PID.
func LockDir(dir string, wait time.Duration) (*Lock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for errors.Is(err, unix.EWOULDBLOCK) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b))
			return nil, fmt.Errorf("%w: another avalanche-agent (pid %s) runs with state directory %s; stop it first", ErrLocked, pid, dir)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// The PID is for the message a second agent prints; the lock is the flock.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
