package nspawntest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// manifest declares one secret for a real user and group, whose change
// restarts the service that reads it.
const manifest = `{"version": 1, "secrets": [
  {"name": "db/password", "sopsFile": "${./secrets/db.yaml}", "key": "db/password", "format": "yaml",
   "owner": "db", "group": "db", "mode": "0440", "restartUnits": ["db.service"], "reloadUnits": []}
]}`

// dbUnit reads its secret at start, as a service running as its owner.
const dbUnit = `[Unit]
Description=a service reading its secret
After=avalanche-agent.service

[Service]
User=db
ExecStart=/bin/sh -c 'echo "db started with $(cat /run/secrets/db/password)"; exec sleep infinity'
`

// Secrets land on the module's ramfs, owned by a real user and group, and
// a change restarts the unit the manifest names (restartUnits).
func TestSystemdSecrets(t *testing.T) {
	t.Parallel()
	key := secretstest.NewAgeKey(t)
	system := func(value string) nixtest.FlakeOptions {
		return nixtest.FlakeOptions{Marker: value, SecretsManifest: manifest,
			Files: map[string]string{"secrets/db.yaml": string(secretstest.Encrypt(t, "yaml", "db:\n    password: "+value+"\n", key.Recipient))}}
	}
	h := NewHost(t, HostOptions{Name: "avalanche-secrets", First: system("v1"),
		Module: `decryption = { ageKeyFiles = [ "/etc/avalanche-test/age.key" ]; sshKeyPaths = [ ]; };`,
		Setup: func(t testing.TB, root string) {
			data, err := os.ReadFile(key.File)
			if err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(root, "etc/avalanche-test"), 0o700)
			if err := os.WriteFile(filepath.Join(root, "etc/avalanche-test/age.key"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "etc/systemd/system/db.service"), []byte(dbUnit), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("chroot", root, "useradd", "--system", "--user-group", "db").CombinedOutput(); err != nil {
				t.Fatalf("useradd db: %v: %s", err, out)
			}
		}})
	first := nixtest.Git(t, h.Repo.Work, "rev-parse", "HEAD")
	h.Deployed(t, first, 2*time.Minute)
	if got := strings.TrimSpace(h.MustRun(t, "stat", "-L", "-c", "%U %G %a", "/run/secrets/db/password")); got != "db db 440" {
		t.Errorf("/run/secrets/db/password: owner, group, mode %q; want db db 440", got)
	}
	if fs := strings.TrimSpace(h.MustRun(t, "findmnt", "-n", "-o", "FSTYPE", "/run/avalanche-agent/secrets.d")); fs != "ramfs" {
		t.Errorf("/run/avalanche-agent/secrets.d is %q; want the module's ramfs", fs)
	}
	if dir := h.MustRun(t, "readlink", "-f", "/run/secrets"); !strings.HasPrefix(dir, "/run/avalanche-agent/secrets.d/") {
		t.Errorf("/run/secrets -> %s; want a generation on the ramfs", dir)
	}
	h.MustRun(t, "systemctl", "start", "db")
	pid := h.Show(t, "db", "MainPID")["MainPID"]

	c := h.Commit(t, system("v2"), "rotate the password")
	h.Agent(t, "sync", "--wait")
	h.Deployed(t, c, time.Minute)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(h.Journal(t, "-u", "db"), "db started with v2") {
		if time.Now().After(deadline) {
			t.Fatalf("db.service was not restarted with the new secret:\n%s", h.Journal(t, "-u", "db"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if now := h.Show(t, "db", "MainPID")["MainPID"]; now == pid {
		t.Errorf("db.service kept its process %s; want it restarted", pid)
	}
}
