// Package logging builds the agent's zerolog logger: structured journald
// entries under systemd (every field becomes an AVALANCHE_* journal field,
// so `journalctl -u avalanche-agent AVALANCHE_COMMIT=<sha>` shows one
// rollout), a readable console log everywhere else.
package logging

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/rs/zerolog"
)

// Identifier is the SYSLOG_IDENTIFIER of every journal entry.
const Identifier = "avalanche-agent"

// New returns a logger at level. Under systemd (stderr is a journal stream)
// it writes native journal entries; otherwise a console log to w.
func New(level string, w io.Writer) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	var out io.Writer = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05", NoColor: !isTerminal(w)}
	if ok, _ := journal.StderrIsJournalStream(); ok && journal.Enabled() {
		out = &JournalWriter{Send: journal.Send}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// JournalWriter turns zerolog's JSON events into native journal entries.
// Each event field f becomes the journal field AVALANCHE_<F>; the message
// becomes MESSAGE and the level PRIORITY.
type JournalWriter struct {
	// Send delivers one entry; journal.Send in production.
	Send func(message string, priority journal.Priority, vars map[string]string) error
}

// Write implements io.Writer for events without a known level.
func (j *JournalWriter) Write(p []byte) (int, error) {
	return j.WriteLevel(zerolog.NoLevel, p)
}

// WriteLevel implements zerolog.LevelWriter.
func (j *JournalWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	var ev map[string]any
	if err := json.Unmarshal(p, &ev); err != nil {
		return 0, fmt.Errorf("decoding log event: %w", err)
	}
	msg, _ := ev[zerolog.MessageFieldName].(string)
	vars := map[string]string{"SYSLOG_IDENTIFIER": Identifier}
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case zerolog.MessageFieldName, zerolog.LevelFieldName, zerolog.TimestampFieldName:
			continue
		}
		vars[FieldName(k)] = valueString(ev[k])
	}
	if msg == "" {
		msg = vars["AVALANCHE_ERROR"]
	}
	if err := j.Send(msg, priority(level), vars); err != nil {
		return 0, err
	}
	return len(p), nil
}

// FieldName maps a log field name to its journal field name: "commit" →
// "AVALANCHE_COMMIT", "storePath" → "AVALANCHE_STORE_PATH".
func FieldName(k string) string {
	var b strings.Builder
	b.WriteString("AVALANCHE_")
	for i, r := range k {
		switch {
		case r >= 'A' && r <= 'Z':
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func valueString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%f", v), ".000000")
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func priority(l zerolog.Level) journal.Priority {
	switch l {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return journal.PriDebug
	case zerolog.WarnLevel:
		return journal.PriWarning
	case zerolog.ErrorLevel:
		return journal.PriErr
	case zerolog.FatalLevel:
		return journal.PriCrit
	case zerolog.PanicLevel:
		return journal.PriEmerg
	default:
		return journal.PriInfo
	}
}

// LineWriter logs each line written to it (a build log) at debug level,
// keeping the last lines for error reports elsewhere.
type LineWriter struct {
	Log   zerolog.Logger
	Field string
	buf   []byte
}

// Write logs complete lines.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf[:i]), "\r")
		w.buf = w.buf[i+1:]
		if line != "" {
			w.Log.Debug().Str("phase", w.Field).Msg(line)
		}
	}
	if len(w.buf) > 64<<10 {
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
