package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Builder mode in plain words: where the running system came from, a wait
// for the builder and why it looks down, a substitution's progress, and
// the builder role's progress.
func TestWriteStatusBuilderMode(t *testing.T) {
	now := time.Date(2026, 11, 29, 18, 0, 0, 0, time.UTC)
	const c1, c2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	s := status.Status{Hostname: "raccoon03", FlakeOutput: "raccoon03", State: status.Waiting, DaemonRunning: true,
		Deployed: &state.Deployment{Commit: c1, Branch: "main", Result: "deployed", Source: "builder", Time: now.Add(-time.Hour),
			Release: &state.Release{ID: "abc", Builder: "cardinal", Built: now.Add(-2 * time.Hour)}},
		Waiting: &status.Wait{Commit: c2, Message: "waiting for the builder's release of 222222222222 since 2026-11-29 17:40:00 UTC (20m0s); " +
			"past deploy.builderTimeout (10m0s), still waiting (deploy.builderFallback = wait); the builder looks down: its release branch has not moved for 20m0s",
			BuilderDown: "its release branch has not moved for 20m0s"},
		Flight: &status.Flight{Commit: c2, Step: "build", Source: "builder", Release: &state.Release{Builder: "cardinal"},
			Substitution: &status.Substitution{Paths: 40, PathsDone: 12, Bytes: 10 << 20, BytesDone: 3 << 20}},
		Builder: &status.Builder{Commit: c2, Started: now.Add(-time.Minute), Error: "host opi01: copying …: connection refused",
			Hosts: map[string]status.BuilderHost{"a": {Phase: "done"}, "b": {Phase: "done"}, "opi01": {Phase: "waiting"}}},
	}
	var buf bytes.Buffer
	if err := WriteStatus(&buf, s, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"source        release of 111111111111 from cardinal, published 2026-11-29",
		"WAITING       waiting for the builder's release of 222222222222 since 2026-11-29 17:40:00 UTC (20m0s); past deploy.builderTimeout (10m0s), still waiting (deploy.builderFallback = wait)\n",
		"builder       LOOKS DOWN: its release branch has not moved for 20m0s",
		"source        release of 222222222222 from cardinal",
		"substituting  12 of 40 paths, 3.0 MiB of 10.0 MiB",
		"builder       222222222222: 2 done, 1 waiting; NOT RELEASED: host opi01: copying …: connection refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

// The network status never shows the builder's key files, even inside the
// error of a failed signing.
func TestRedactBuilder(t *testing.T) {
	c := &config.Config{}
	c.Builder.SigningKeyFile = "/run/avalanche-agent/secrets/cache-key"
	s := status.Status{Builder: &status.Builder{Error: "signing: nix store sign --key-file /run/avalanche-agent/secrets/cache-key: exit 1",
		Hosts: map[string]status.BuilderHost{"a": {Phase: "waiting", Error: "--key-file /run/avalanche-agent/secrets/cache-key"}}}}
	r := Redact(s, c)
	if strings.Contains(r.Builder.Error, "cache-key") || strings.Contains(r.Builder.Hosts["a"].Error, "cache-key") {
		t.Errorf("Redact kept the signing key's path: %+v", r.Builder)
	}
	if !strings.Contains(s.Builder.Error, "cache-key") {
		t.Errorf("Redact changed the daemon's own status")
	}
}
