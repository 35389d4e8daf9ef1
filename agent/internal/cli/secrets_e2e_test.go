package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/avalanche-fleet/avalanche/agent/internal/boot"
	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/notify"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/secrets"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// secretsManifest declares two secrets: a yaml key read by db.service and a
// binary file with numeric owner and group read by web.service. The
// ${./…} paths copy the encrypted files of the commit into the store, so a
// re-encrypted file changes the system's closure.
const secretsManifest = `{"version": 1, "secrets": [
  {"name": "db/password", "sopsFile": "${./secrets/db.yaml}", "key": "db/password",
   "owner": "root", "mode": "0400", "restartUnits": ["db.service"]},
  {"name": "tls.pem", "sopsFile": "${./secrets/tls.bin}", "format": "binary",
   "owner": "1234", "group": "5678", "mode": "0440", "reloadUnits": ["web.service"]}
]}`

// Plain values; the TLS ones are binary, with NUL and non-UTF-8 bytes.
const (
	dbV1  = "hunter2"
	dbV2  = "correct horse battery staple"
	tlsV1 = "\x00\x01-----BEGIN KEY-----\nv1\xff\xfe\n"
	tlsV2 = "\x00\x02-----BEGIN KEY-----\nv2\xff\xfe\n"
)

// TestSecretsThroughDeployments deploys commits with SOPS secrets through
// the real wiring (NewDaemon, the avalanche-decrypt helper, a tmpfs store,
// real git and nix) and checks what lands in secrets.dir at every step.
func TestSecretsThroughDeployments(t *testing.T) {
	nixtest.Require(t)
	secretstest.RequireMount(t)
	h := newSecretsHost(t)

	h.commit(t, "first", dbYAML(t, dbV1, h.key), tlsBin(t, tlsV1, h.key))
	h.start(t)
	out1 := h.deployedPath(t)
	gen1 := map[string]secretFile{
		".": dirEntry(), "db": dirEntry(),
		"db/password": {Mode: 0o400, Data: dbV1},
		"tls.pem":     {Mode: 0o440, UID: 1234, GID: 5678, Data: tlsV1},
	}
	t.Run("first deploy installs every secret", func(t *testing.T) {
		h.checkSecrets(t, "1", gen1)
		if b, err := secrets.BackingOf(h.storeRoot()); !b.NeverSwapped() || err != nil {
			t.Errorf("%s is on %q, %v after the first install; want a ramfs or a noswap tmpfs", h.storeRoot(), b, err)
		}
		h.checkActivations(t, "switch "+out1)
		h.checkSystemctl(t, "try-reload-or-restart web.service", "try-restart db.service")
	})

	gen2 := copyFiles(gen1)
	gen2["db/password"] = secretFile{Mode: 0o400, Data: dbV2}
	t.Run("changed secret gets a new generation and restarts its unit", func(t *testing.T) {
		h.commit(t, "rotate db password", dbYAML(t, dbV2, h.key), "")
		if r := h.sync(t); r.Result != "deployed" {
			t.Fatalf("sync = %+v; want deployed", r)
		}
		h.checkSecrets(t, "2", gen2)
		h.checkGeneration(t, "1", gen1) // kept for rollbacks
		h.checkActivations(t, "switch "+out1, "switch "+h.deployedPath(t))
		h.checkSystemctl(t, "try-restart db.service")
	})
	out2 := h.deployedPath(t)

	t.Run("one bad secret refuses the deployment", func(t *testing.T) {
		before := h.snapshot(t)
		// tls.bin encrypted to a key this host does not hold, db.yaml fine.
		bad := h.commit(t, "tls for somebody else", dbYAML(t, dbV1, h.key), tlsBin(t, tlsV2, secretstest.NewAgeKey(t)))
		r := h.sync(t)
		if r.OK || r.Result != "failed" || !strings.Contains(r.Error, `secret "tls.pem"`) {
			t.Fatalf("sync = %+v; want failed naming secret \"tls.pem\"", r)
		}
		if s := h.status(t); !strings.Contains(s.LastError, `secret "tls.pem"`) || strings.Contains(s.LastError, `"db/password"`) {
			t.Errorf("status.LastError = %q; want it to name tls.pem only", s.LastError)
		}
		if b := h.state(t).IsBad(bad); b == nil || b.Phase != "secrets" {
			t.Errorf("IsBad(%s) = %+v; want bad in phase secrets", bad, b)
		}
		if diff := cmp.Diff(before, h.snapshot(t)); diff != "" {
			t.Errorf("secrets changed by a refused deployment (-before +after):\n%s", diff)
		}
		h.checkActivations(t, "switch "+out1, "switch "+out2)
		h.checkSystemctl(t)

		// The operator's check of that commit says the same, writing nothing.
		before = h.snapshot(t)
		t.Setenv("XDG_CACHE_HOME", strings.TrimPrefix(h.cacheEnv[0], "XDG_CACHE_HOME="))
		out, _, err := run(t, "secrets", "check", "--config", h.cfg.Path, "--commit", bad)
		if err == nil || !strings.Contains(out, "FAIL  tls.pem") || !strings.Contains(out, "ok    db/password") {
			t.Errorf("secrets check --commit %s = %v:\n%s\nwant tls.pem failing and db/password ok", bad, err, out)
		}
		if diff := cmp.Diff(before, h.snapshot(t)); diff != "" {
			t.Errorf("secrets check wrote something (-before +after):\n%s", diff)
		}
		out, _, err = run(t, "secrets", "check", "--config", h.cfg.Path)
		if err != nil || strings.Count(out, "ok ") != 2 {
			t.Errorf("secrets check of the running system = %v:\n%s\nwant two ok", err, out)
		}
		out, _, err = run(t, "secrets", "recipient", "--config", h.cfg.Path)
		if err != nil || strings.TrimSpace(out) != h.key.Recipient {
			t.Errorf("secrets recipient = %q, %v; want %s", out, err, h.key.Recipient)
		}
	})

	t.Run("failed activation restores the previous generation", func(t *testing.T) {
		before := h.snapshot(t)
		h.opts.ActivationExit = 1
		h.commit(t, "new tls, broken activation", dbYAML(t, dbV2, h.key), tlsBin(t, tlsV2, h.key))
		if r := h.sync(t); r.Result != "rolled-back" {
			t.Fatalf("sync = %+v; want rolled-back", r)
		}
		if diff := cmp.Diff(before, h.snapshot(t), cmpopts.IgnoreFields(snapshot{}, "Generations")); diff != "" {
			t.Errorf("secrets after the rollback differ (-before +after):\n%s", diff)
		}
		h.checkSecrets(t, "2", gen2)
		gen3 := copyFiles(gen2)
		gen3["tls.pem"] = secretFile{Mode: 0o440, UID: 1234, GID: 5678, Data: tlsV2}
		h.checkGeneration(t, "3", gen3) // installed before activation, then left
		acts := h.activations(t)
		if len(acts) != 4 || acts[3] != "switch "+out2 {
			t.Errorf("activations = %q; want out1, out2, the bad one, out2 again", acts)
		}
		h.checkSystemctl(t, "try-reload-or-restart web.service") // tls.pem changed back
	})

	t.Run("manual rollback restores the previous deployment's secrets", func(t *testing.T) {
		os.Remove(h.ctlLog)
		if err := h.client().Rollback(context.Background()); err != nil {
			t.Fatalf("Rollback() = %v", err)
		}
		h.checkSecrets(t, "1", gen1)
		if acts := h.activations(t); acts[len(acts)-1] != "switch "+out1 {
			t.Errorf("last activation = %q; want switch %s", acts[len(acts)-1], out1)
		}
		h.checkSystemctl(t, "try-restart db.service") // db/password changed back
	})

	t.Run("first deployment by a fresh agent restores the secrets it found", func(t *testing.T) {
		h.stop()
		h.cfg.StateDir = filepath.Join(h.dir, "state2") // no record of any deployment
		h.opts.ActivationExit = 1
		h.opts.Marker = "fresh"
		h.commit(t, "broken activation on a fresh agent", dbYAML(t, dbV2, h.key), tlsBin(t, tlsV2, h.key))
		os.Remove(h.ctlLog)
		h.start(t) // the running system's secrets are unchanged (1 stays), then deploys (4) and rolls back
		if s := h.status(t); s.Deployed != nil || !strings.Contains(s.LastError, "rolled back") {
			t.Fatalf("status = %+v; want no deployment and a rollback", s)
		}
		h.checkSecrets(t, "1", gen1)
		h.checkSystemctl(t, "try-reload-or-restart web.service", "try-restart db.service")
	})
}

// secretsHost is one sandboxed host running the daemon NewDaemon wires.
type secretsHost struct {
	t        *testing.T
	dir      string
	up       *nixtest.Repo
	cfg      *config.Config
	opts     nixtest.FlakeOptions
	key      secretstest.AgeKey
	actLog   string
	ctlLog   string
	cacheEnv []string
	cancel   context.CancelFunc
	done     chan error
}

func newSecretsHost(t *testing.T) *secretsHost { return newSecretsHostWith(t, nil) }

// newSecretsHostWith is newSecretsHost with the config changed by mutate.
func newSecretsHostWith(t *testing.T, mutate func(c map[string]any)) *secretsHost {
	t.Helper()
	dir := t.TempDir()
	h := &secretsHost{t: t, dir: dir, up: nixtest.NewRepo(t, "main"), key: secretstest.NewAgeKey(t),
		actLog: filepath.Join(dir, "activations.log"), ctlLog: filepath.Join(dir, "systemctl.log"), cacheEnv: nixtest.Env(t)}
	h.opts = nixtest.FlakeOptions{Name: "sechost", Marker: "v1", ActivationLog: h.actLog,
		CurrentSystemLink: filepath.Join(dir, "current-system"), SecretsManifest: secretsManifest}
	helper, err := secretstest.BuildHelper(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	server := gittest.StartHTTPServer(t, h.up.Bare, "tok")
	c := map[string]any{
		"version": 1, "hostname": "sechost", "pollInterval": "1h",
		"repository": map[string]any{"url": server.URL, "tokenFile": writeFile(t, dir, "token", "tok\n"), "allowInsecureHTTP": true},
		"stateDir":   filepath.Join(dir, "state"), "runtimeDir": filepath.Join(dir, "run"),
		"deploy": map[string]any{"profile": filepath.Join(dir, "profiles", "system"), "currentSystem": h.opts.CurrentSystemLink,
			"bootedSystem": filepath.Join(dir, "booted-system"), "systemdRun": false, "confirmTimeout": "5s", "nixArgs": nixtest.Args()},
		"secrets": map[string]any{"dir": filepath.Join(dir, "secrets"), "ageKeyFiles": []string{h.key.File}, "helper": helper},
	}
	if mutate != nil {
		mutate(c)
	}
	b, _ := json.Marshal(c)
	if h.cfg, err = config.Load(writeFile(t, dir, "config.json", string(b))); err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(h.storeRoot(), syscall.MNT_DETACH) }) // before TempDir's removal
	h.fakeSystemctl()
	t.Setenv("JOURNAL_STREAM", "") // log to the test, not the journal
	return h
}

// fakeSystemctl puts a systemctl first on PATH that records its arguments.
func (h *secretsHost) fakeSystemctl() {
	bin := filepath.Join(h.dir, "bin")
	os.Mkdir(bin, 0o755)
	script := "#!/bin/sh\necho \"$*\" >> " + h.ctlLog + "\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(script), 0o755); err != nil {
		h.t.Fatal(err)
	}
	h.t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// commit writes the encrypted files (tls.bin only when set) and the
// flake, and pushes it.
func (h *secretsHost) commit(t *testing.T, msg, db, tls string) string {
	t.Helper()
	h.up.WriteFile(t, "secrets/db.yaml", db)
	if tls != "" {
		h.up.WriteFile(t, "secrets/tls.bin", tls)
	}
	return h.up.WriteFlake(t, h.opts, msg)
}

// dbYAML is secrets/db.yaml holding password, encrypted to key.
func dbYAML(t *testing.T, password string, key secretstest.AgeKey) string {
	return string(secretstest.Encrypt(t, "yaml", "db:\n    password: "+password+"\n", key.Recipient))
}

// tlsBin is secrets/tls.bin holding data, encrypted to key.
func tlsBin(t *testing.T, data string, key secretstest.AgeKey) string {
	return string(secretstest.Encrypt(t, "binary", data, key.Recipient))
}

// start runs the daemon NewDaemon wires until stop or the test's end, and
// waits for the start-up pass.
func (h *secretsHost) start(t *testing.T) {
	t.Helper()
	d, err := NewDaemon(h.cfg, testLog{h.t})
	if err != nil {
		t.Fatal(err)
	}
	d.Nix.(*rebuild.Nix).Env = h.cacheEnv
	d.Notify = &notify.Notifier{Send: func(string) (bool, error) { return false, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- d.Run(ctx) }()
	h.t.Cleanup(h.stop)
	if _, err := waitPasses(context.Background(), h.client(), 1, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// stop ends the daemon; it runs in the parent test's cleanup too.
func (h *secretsHost) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("daemon Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Errorf("daemon did not stop")
	}
}

func (h *secretsHost) client() *client.Client { return &client.Client{Socket: h.cfg.SocketPath()} }

// sync runs one pass now; the fake systemctl log starts empty for it.
func (h *secretsHost) sync(t *testing.T) status.SyncResult {
	t.Helper()
	os.Remove(h.ctlLog)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := h.client().Sync(ctx, true, false)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return r
}

func (h *secretsHost) status(t *testing.T) status.Status {
	t.Helper()
	s, err := h.client().Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return s
}

func (h *secretsHost) state(t *testing.T) *state.State {
	t.Helper()
	st, err := state.Load(h.cfg.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *secretsHost) deployedPath(t *testing.T) string {
	t.Helper()
	s := h.status(t)
	if s.Deployed == nil || s.Deployed.Result != "deployed" {
		t.Fatalf("status.Deployed = %+v; want a deployment", s.Deployed)
	}
	return s.Deployed.StorePath
}

func (h *secretsHost) storeRoot() string { return filepath.Join(h.cfg.RuntimeDir, "secrets.d") }

// activations returns the lines switch-to-configuration logged: "<action> <out>".
func (h *secretsHost) activations(t *testing.T) []string {
	t.Helper()
	b, _ := os.ReadFile(h.actLog)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (h *secretsHost) checkActivations(t *testing.T, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, h.activations(t)); diff != "" {
		t.Errorf("activations mismatch (-want +got):\n%s", diff)
	}
}

// checkSystemctl compares the fake systemctl's calls since the last sync,
// sorted: the daemon runs restarts and reloads in map order.
func (h *secretsHost) checkSystemctl(t *testing.T, want ...string) {
	t.Helper()
	log, err := os.ReadFile(h.ctlLog)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(string(log), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	sort.Strings(got)
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("systemctl calls mismatch (-want +got):\n%s", diff)
	}
}

// checkSecrets checks that secrets.dir links to generation id and holds
// exactly want.
func (h *secretsHost) checkSecrets(t *testing.T, id string, want map[string]secretFile) {
	t.Helper()
	id = genName(id)
	target, err := os.Readlink(h.cfg.Secrets.Dir)
	if err != nil || target != filepath.Join(h.storeRoot(), id) {
		t.Errorf("Readlink(%s) = %q, %v; want generation %s", h.cfg.Secrets.Dir, target, err, filepath.Join(h.storeRoot(), id))
	}
	if diff := cmp.Diff(want, readTree(t, h.cfg.Secrets.Dir)); diff != "" {
		t.Errorf("secrets dir mismatch (-want +got):\n%s", diff)
	}
}

func (h *secretsHost) checkGeneration(t *testing.T, id string, want map[string]secretFile) {
	t.Helper()
	id = genName(id)
	if diff := cmp.Diff(want, readTree(t, filepath.Join(h.storeRoot(), id))); diff != "" {
		t.Errorf("generation %s mismatch (-want +got):\n%s", id, diff)
	}
}

// genName is the name of generation number n in this boot ("3-1a2b3c4d").
func genName(n string) string {
	b := strings.ReplaceAll(boot.ID(), "-", "")
	return n + "-" + b[:8]
}

// snapshot is everything a service could see: the link and the files.
type snapshot struct {
	Link        string
	Files       map[string]secretFile
	Generations []string
}

func (h *secretsHost) snapshot(t *testing.T) snapshot {
	t.Helper()
	link, err := os.Readlink(h.cfg.Secrets.Dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(h.storeRoot())
	if err != nil {
		t.Fatal(err)
	}
	var gens []string
	for _, e := range entries {
		gens = append(gens, e.Name())
	}
	return snapshot{Link: link, Files: readTree(t, h.cfg.Secrets.Dir), Generations: gens}
}

// secretFile is one entry under the secrets directory.
type secretFile struct {
	Mode     fs.FileMode
	UID, GID uint32
	Data     string
}

func dirEntry() secretFile { return secretFile{Mode: fs.ModeDir | 0o751} }

func copyFiles(m map[string]secretFile) map[string]secretFile {
	c := make(map[string]secretFile, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// readTree reads every entry below dir (a symlink to a directory is followed).
func readTree(t *testing.T, dir string) map[string]secretFile {
	t.Helper()
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatalf("EvalSymlinks(%s) = %v", dir, err)
	}
	files := map[string]secretFile{}
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		f := secretFile{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			f.Data = string(b)
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = f
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	return files
}

// testLog sends the daemon's log lines to t.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ daemon.Secrets = (*secretsInstaller)(nil)
