package daemon_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSystemdNotify listens where systemd would (NOTIFY_SOCKET) and reads
// what go-systemd really sends: READY=1 only once the API socket exists,
// a STATUS line per state change (never the same twice in a row), and
// watchdog pings.
func TestSystemdNotify(t *testing.T) {
	h := newHost(t, nil)
	h.commit("first", nil)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")

	var mu sync.Mutex
	var msgs []string
	readyWithSocket := make(chan bool, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			m := string(buf[:n])
			if m == "READY=1" {
				_, statErr := os.Stat(h.cfg.SocketPath())
				readyWithSocket <- statErr == nil
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()
	h.start()
	select {
	case ok := <-readyWithSocket:
		if !ok {
			t.Errorf("READY=1 arrived before the API socket existed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no READY=1")
	}
	time.Sleep(300 * time.Millisecond) // a watchdog ping or two

	mu.Lock()
	defer mu.Unlock()
	var statuses []string
	watchdog := 0
	for _, m := range msgs {
		switch {
		case strings.HasPrefix(m, "STATUS="):
			statuses = append(statuses, strings.TrimPrefix(m, "STATUS="))
		case m == "WATCHDOG=1":
			watchdog++
		}
	}
	for i := 1; i < len(statuses); i++ {
		if statuses[i] == statuses[i-1] {
			t.Errorf("STATUS %q sent twice in a row", statuses[i])
		}
	}
	joined := strings.Join(statuses, " | ")
	for _, want := range []string{"fetching", "evaluating", "building", "activating", "confirming", "idle: deployed"} {
		if !strings.Contains(joined, want) {
			t.Errorf("STATUS lines %q lack %q", joined, want)
		}
	}
	if watchdog == 0 {
		t.Errorf("no WATCHDOG=1 within 300ms with WatchdogSec=200ms")
	}
}
