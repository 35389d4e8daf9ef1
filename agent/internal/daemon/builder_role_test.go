package daemon_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/builder"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// builderRoleHost is a second agent on the same repository as h, named
// cardinal, with the builder role: it builds the fleet (h's system and its
// own) into fb's cache and publishes releases with fb's key.
func builderRoleHost(t *testing.T, h *host, fb *fleetBuilder, cacheURL string) *host {
	t.Helper()
	b := newHost(t, func(c map[string]any) {
		c["hostname"] = "cardinal"
		c["repository"] = map[string]any{"url": h.server.URL, "tokenFile": h.cfg.Repository.TokenFile, "allowInsecureHTTP": true}
		c["builder"] = map[string]any{"enable": true, "cacheURL": cacheURL,
			"signingKeyFile": fb.cache.SecretKeyFile, "releaseKeyFile": fb.key}
	})
	b.opts.Name = "cardinal"
	return b
}

// commitFleet pushes a fleet of both hosts at version marker.
func commitFleet(t *testing.T, h, b *host, fb *fleetBuilder, marker string) string {
	t.Helper()
	for _, x := range []*host{h, b} {
		m := fb.id + " " + x.opts.Name + " " + marker
		x.opts.Marker, x.opts.Kernel, x.opts.Initrd, x.opts.KernelModules = marker, "kernel "+m, "initrd "+m, "modules "+m
	}
	if err := nixtest.WriteFleet(h.up.Work, []nixtest.FlakeOptions{h.opts, b.opts}); err != nil {
		t.Fatal(err)
	}
	return h.commitSigned("fleet " + marker)
}

// The builder role in the daemon: its pass releases each new main commit
// for the fleet before deploying its own system; a host in builder mode
// deploys that release without evaluating; status carries the builder's
// progress per host.
func TestBuilderRoleReleasesInThePass(t *testing.T) {
	h, fb := newBuilderHost(t, "30m", "wait", nil)
	b := builderRoleHost(t, h, fb, fb.cache.URL)
	first := commitFleet(t, h, b, fb, "v1")
	b.start()

	s := b.status()
	if s.Deployed == nil || s.Deployed.Commit != first || s.Deployed.Source != "local" {
		t.Fatalf("the builder deployed %+v; want %s, evaluated locally", s.Deployed, first)
	}
	p := s.Builder
	if p == nil || p.Commit != first || p.Release == "" || p.Hosts[hostName].Phase != builder.PhaseDone || p.Hosts["cardinal"].Phase != builder.PhaseDone {
		t.Fatalf("status.Builder = %+v; want %s released, both hosts done", p, first)
	}
	out := p.Hosts[hostName].OutPath
	if err := os.RemoveAll(filepath.Join(b.cfg.StateDir, "builder-gcroots")); err != nil {
		t.Fatal(err)
	}
	fb.evict(t, releasedHost(t, out))

	rec := recordNix(t, h)
	h.start()
	d := h.status().Deployed
	if d == nil || d.Commit != first || d.StorePath != out || d.Release == nil || d.Release.ID != p.Release || d.Release.Builder != "cardinal" {
		t.Fatalf("the host deployed %+v; want the release %s of %s by cardinal", d, p.Release, first)
	}
	if ev := nixtest.Evaluations(rec.Calls(t)); len(ev) != 0 {
		t.Errorf("the host evaluated or built: %q", ev)
	}
}

// The builder role's failures are never the commit's: with an unusable
// cache the builder still deploys its own system, the commit is not
// refused, and status shows why nothing was released.
func TestBuilderRoleFailureIsNotTheCommits(t *testing.T) {
	h, fb := newBuilderHost(t, "30m", "wait", nil)
	b := builderRoleHost(t, h, fb, "file:///proc/avalanche-no-cache")
	first := commitFleet(t, h, b, fb, "v1")
	b.start()
	s := b.status()
	if s.Deployed == nil || s.Deployed.Commit != first || s.LastError != "" {
		t.Errorf("the builder: deployed %+v, last error %q; want its own system deployed", s.Deployed, s.LastError)
	}
	if bad := b.state().IsBad(first); bad != nil {
		t.Errorf("IsBad(%s) = %+v; want no verdict from the builder role", first, bad)
	}
	if p := s.Builder; p == nil || p.Release != "" || !strings.Contains(p.Error, "/proc/avalanche-no-cache") {
		t.Errorf("status.Builder = %+v; want no release and the copy's error", p)
	}
}

// releasedHost is the release entry of the system out: its path and the
// derivation that built it.
func releasedHost(t *testing.T, out string) release.Host {
	t.Helper()
	drv, err := exec.Command("nix-store", "--query", "--deriver", out).Output()
	if err != nil {
		t.Fatalf("nix-store --query --deriver %s: %v", out, err)
	}
	return release.Host{OutPath: out, DrvPath: strings.TrimSpace(string(drv))}
}
