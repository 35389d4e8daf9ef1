package logging

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{"commit": "AVALANCHE_COMMIT", "storePath": "AVALANCHE_STORE_PATH", "phase": "AVALANCHE_PHASE", "x-y": "AVALANCHE_X_Y"} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestJournalFieldsOnTheWire binds the journal's socket (systemd does not
// run here) and reads the exact datagram go-systemd sends for one event.
func TestJournalFieldsOnTheWire(t *testing.T) {
	const sock = "/run/systemd/journal/socket"
	if _, err := os.Stat(sock); err == nil {
		t.Skip("a real journald listens here; not replacing its socket")
	}
	if err := os.MkdirAll("/run/systemd/journal", 0o755); err != nil {
		t.Skipf("cannot create the journal socket directory: %v", err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("cannot bind %s: %v", sock, err)
	}
	defer os.Remove(sock)
	defer conn.Close()

	log := zerolog.New(&JournalWriter{Send: journal.Send})
	log.Error().Str("commit", "0123abcd").Str("phase", "build").Int("generation", 42).Msg("build failed")

	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("reading the journal datagram: %v", err)
	}
	got := parseNative(t, buf[:n])
	want := map[string]string{
		"MESSAGE": "build failed", "PRIORITY": "3", "SYSLOG_IDENTIFIER": "avalanche-agent",
		"AVALANCHE_COMMIT": "0123abcd", "AVALANCHE_PHASE": "build", "AVALANCHE_GENERATION": "42",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("journal fields (-want +got):\n%s", diff)
	}
}

// parseNative decodes journald's native protocol: KEY=value lines (the
// binary-safe length form is not needed for these values).
func parseNative(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		k, v, ok := strings.Cut(string(line), "=")
		if !ok {
			t.Fatalf("unexpected line %q in %q", line, b)
		}
		m[k] = v
	}
	return m
}

func TestJournalWriterSendError(t *testing.T) {
	w := &JournalWriter{Send: func(string, journal.Priority, map[string]string) error { return errors.New("boom") }}
	if _, err := w.WriteLevel(zerolog.InfoLevel, []byte(`{"message":"x"}`)); err == nil {
		t.Errorf("WriteLevel with a failing Send = nil; want the error")
	}
}

func TestConsoleOutsideSystemd(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	var buf bytes.Buffer
	log := New("info", &buf)
	log.Info().Str("commit", "abc").Msg("hello")
	log.Debug().Msg("hidden")
	out := buf.String()
	if !strings.Contains(out, "hello") || !strings.Contains(out, "commit=abc") || strings.Contains(out, "hidden") {
		t.Errorf("console log = %q; want hello with commit=abc and no debug line", out)
	}
}
