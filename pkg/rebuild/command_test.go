package rebuild

import (
	"fmt"
	"strings"
	"testing"
)

func TestTailWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"empty", nil, ""},
		{"split writes", []string{"err", "or: boom\n", "\n"}, "error: boom"},
		{"colours", []string{"\x1b[31;1merror:\x1b[0m boom\n"}, "error: boom"},
		{"last lines", numbered(1, 30), strings.TrimSuffix(strings.Join(numbered(11, 30), ""), "\n")},
	}
	for _, tt := range tests {
		w := &tailWriter{}
		for _, s := range tt.writes {
			if _, err := w.Write([]byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		if got := w.String(); got != tt.want {
			t.Errorf("%s: tail = %q; want %q", tt.name, got, tt.want)
		}
	}

	w := &tailWriter{}
	line := strings.Repeat("x", 1000) + "\n"
	for range 1000 {
		w.Write([]byte(line))
	}
	if len(w.buf) > 2*maxTailBytes || !strings.HasSuffix(w.String(), "xxx") {
		t.Errorf("tail of a long log kept %d bytes; want at most %d", len(w.buf), 2*maxTailBytes)
	}
}

// numbered returns "line from\n" … "line to\n".
func numbered(from, to int) []string {
	var lines []string
	for i := from; i <= to; i++ {
		lines = append(lines, fmt.Sprintf("line %d\n", i))
	}
	return lines
}
