package cli

import (
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// TestDemo runs the README's first command in-process: it must deploy a
// first system, a changed one, skip the kubernetes/-only commit, and roll
// back a commit whose switch fails, ending on the good system.
func TestDemo(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("JOURNAL_STREAM", "")
	out, stderr, err := run(t, "demo")
	if err != nil {
		t.Fatalf("demo = %v\n%s\n%s", err, out, stderr)
	}
	for _, want := range []string{"pass 1: deployed", "pass 2: deployed", "pass 3: up-to-date",
		"pass 4: rolled-back", "demo-web.service", "activate failed", "rolled back",
		"its /etc/motd says: hello from commit two"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
