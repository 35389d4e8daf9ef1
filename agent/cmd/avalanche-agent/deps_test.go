package main

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists the packages a target links, via go list.
func deps(t *testing.T, target string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", target).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", target, err)
	}
	return strings.Fields(string(out))
}

// TestDaemonDeps keeps what the resident daemon links small: sops and the
// cloud KMS SDKs live in avalanche-decrypt (with the admin's host
// commands), the Tailscale and Hetzner clients in avalanche-cloud, the
// S3 client (minio-go, 2.3 MB of arm64 binary) in avalanche-s3,
// Kubernetes, the Prometheus rule parser and Grafana's dashboard SDK in
// kubernetes/check, and the metrics need no Prometheus client.
func TestDaemonDeps(t *testing.T) {
	banned := []string{"github.com/getsops/sops", "k8s.io/", "sigs.k8s.io/", "cloud.google.com/",
		"github.com/aws/", "github.com/Azure/", "github.com/hashicorp/vault", "tailscale.com/tsnet",
		"tailscale.com/", "github.com/hetznercloud/", "github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest",
		"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest", "github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest",
		"github.com/avalanche-fleet/avalanche/agent/internal/enrol", // host commands link sops: avalanche-decrypt runs them
		"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest", "github.com/grafana/",
		"github.com/minio/", "github.com/avalanche-fleet/avalanche/pkg/s3cache/s3test", // the builder runs avalanche-s3
		// The metrics are written without protobuf (1.5 MB of arm64 binary).
		"github.com/prometheus/", "google.golang.org/protobuf"}
	banned = append(banned, "testing")
	for _, d := range deps(t, ".") {
		for _, b := range banned {
			if strings.HasPrefix(d, b) {
				t.Errorf("avalanche-agent links %s (banned prefix %q)", d, b)
			}
		}
	}
}

// TestLibrariesDoNotLog: packages under pkg/ return errors; the agent logs.
func TestLibrariesDoNotLog(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../../../pkg/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if strings.HasSuffix(fields[0], "test") {
			continue // test helpers (gittest, nixtest...) may log like tests do
		}
		for _, imp := range fields[1:] {
			if imp == "log" || imp == "log/slog" || strings.HasPrefix(imp, "github.com/rs/zerolog") {
				t.Errorf("%s imports %s; libraries under pkg/ must not log", fields[0], imp)
			}
		}
	}
}
