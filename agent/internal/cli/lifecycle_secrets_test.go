package cli

// Regression tests for the secrets defects of issue 12 ("Lifecycle-proof"),
// through the real wiring: the decrypt helper, a RAM file system, real git
// and nix. Each failed on the agent before the deployment journal.

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// Defect 3: a crash inside a secrets install left a temporary generation
// directory; the next install picked the same name and failed ("file
// exists"), which marked the next commit bad.
func TestSecretsCrashLeftoversNeverBlock(t *testing.T) {
	nixtest.Require(t)
	secretstest.RequireMount(t)
	h := newSecretsHost(t)
	h.commit(t, "first", dbYAML(t, dbV1, h.key), tlsBin(t, tlsV1, h.key))
	h.start(t)
	h.stop()
	// What a crash inside an install leaves: the temporary directory of the
	// next generation (as agents before this one named it, and as this one
	// does) and a temporary link.
	for _, name := range []string{".tmp-2", ".tmp-" + genName("2"), ".tmp-" + genName("2") + "-1234"} {
		if err := os.MkdirAll(filepath.Join(h.storeRoot(), name, "db"), 0o751); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(filepath.Join(h.storeRoot(), genName("1")), h.cfg.Secrets.Dir+".tmp-"+genName("2"))

	h.start(t)
	h.commit(t, "rotate", dbYAML(t, dbV2, h.key), "")
	if r := h.sync(t); r.Result != "deployed" {
		t.Fatalf("sync after a crash in an install = %+v; want deployed", r)
	}
	if b, err := os.ReadFile(filepath.Join(h.cfg.Secrets.Dir, "db", "password")); err != nil || string(b) != dbV2 {
		t.Errorf("db/password = %q, %v; want the rotated value", b, err)
	}
	left, _ := filepath.Glob(filepath.Join(h.storeRoot(), ".tmp-*"))
	links, _ := filepath.Glob(h.cfg.Secrets.Dir + ".tmp-*")
	if len(left)+len(links) > 0 {
		t.Errorf("leftovers of the crash still there: %q %q", left, links)
	}
}

// Defect 9: secrets generation numbers restarted at 1 after a reboot while
// the history kept the old numbers: a manual rollback activated another
// deployment's secrets.
func TestSecretsRollbackAfterReboot(t *testing.T) {
	nixtest.Require(t)
	secretstest.RequireMount(t)
	orig := bootID
	t.Cleanup(func() { bootID = orig })
	bootID = func() string { return "aaaaaaaa-0000-0000-0000-000000000001" }
	h := newSecretsHost(t)
	h.commit(t, "v1", dbYAML(t, dbV1, h.key), tlsBin(t, tlsV1, h.key))
	h.start(t)
	h.commit(t, "v2", dbYAML(t, dbV2, h.key), "")
	if r := h.sync(t); r.Result != "deployed" {
		t.Fatalf("sync v2 = %+v", r)
	}
	h.stop()

	// The reboot: the RAM file system and the link are gone; the host
	// boots v2 and the kernel has a new boot ID.
	if err := syscall.Unmount(h.storeRoot(), syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(h.storeRoot())
	os.Remove(h.cfg.Secrets.Dir)
	bootID = func() string { return "bbbbbbbb-0000-0000-0000-000000000002" }
	h.start(t) // installs v2's secrets: generation 1 of this boot
	const dbV3 = "third time lucky"
	h.commit(t, "v3", dbYAML(t, dbV3, h.key), "")
	if r := h.sync(t); r.Result != "deployed" {
		t.Fatalf("sync v3 = %+v", r)
	}

	// Back to v2, whose secrets were generation 2 of the earlier boot.
	if err := h.client().Rollback(context.Background()); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(h.cfg.Secrets.Dir, "db", "password")); err != nil || string(b) != dbV2 {
		t.Errorf("db/password after rolling back to v2 = %q, %v; want v2's %q", b, err, dbV2)
	}
}

// Defect 11: a secrets.dir whose parent did not exist failed every
// deployment as the commit's fault ("symlink … no such file or directory").
func TestSecretsDirParentIsCreated(t *testing.T) {
	nixtest.Require(t)
	secretstest.RequireMount(t)
	h := newSecretsHostWith(t, func(c map[string]any) {
		c["secrets"].(map[string]any)["dir"] = filepath.Join(filepath.Dir(c["stateDir"].(string)), "missing", "parent", "secrets")
	})
	h.commit(t, "first", dbYAML(t, dbV1, h.key), tlsBin(t, tlsV1, h.key))
	h.start(t)
	if s := h.status(t); s.Deployed == nil || s.Deployed.Result != "deployed" {
		t.Fatalf("deployed = %+v, last error %q; want deployed", s.Deployed, s.LastError)
	}
	if b, err := os.ReadFile(filepath.Join(h.cfg.Secrets.Dir, "db", "password")); err != nil || string(b) != dbV1 {
		t.Errorf("db/password = %q, %v; want %q", b, err, dbV1)
	}
}
