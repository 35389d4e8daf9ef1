package secrets

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoSopsDependency keeps sops (and every cloud KMS SDK it links) out of
// the resident daemon: only avalanche-decrypt may import it.
func TestNoSopsDependency(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "getsops") || strings.Contains(dep, "aws-sdk") || strings.Contains(dep, "cloud.google.com") {
			t.Errorf("pkg/secrets depends on %s; only cmd/avalanche-decrypt may link sops", dep)
		}
	}
}
