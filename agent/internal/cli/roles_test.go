package cli

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnsureExitNodeRunsAvalancheCloud builds the real avalanche-cloud and
// runs the role against a tailscaled that is not there: the report must
// come back as data with a readable error, not as a lost process failure.
func TestEnsureExitNodeRunsAvalancheCloud(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "avalanche-cloud")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/avalanche-cloud").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Setenv("AVALANCHE_CLOUD", bin)
	cfg := writeFile(t, dir, "config.json", `{"version":1,"hostname":"exit-node","repository":{"url":"/srv/x"},
  "exitNode":{"enable":true,"authKeyFile":"/run/secrets/ts","socket":"`+dir+`/no-tailscaled.sock"}}`)
	r := ensureExitNode(context.Background(), cfg)
	if r.Advertised || r.Online || !strings.Contains(r.Error, "no-tailscaled.sock") {
		t.Errorf("ensureExitNode without tailscaled = %+v; want not advertised and an error naming the socket", r)
	}

	// The operator commands go through the same program.
	_, stderr, err := run(t, "cloud", "frobnicate")
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("cloud frobnicate = %v, %q; want exit 2 with usage", err, stderr)
	}
}
