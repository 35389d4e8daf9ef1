package cli

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// firstDeployActivation stands in for the activation of a NixOS system that
// brings a service and its system user: NixOS's users step creates the user
// (useradd here), the module's step hands the secrets over (the real
// `avalanche-agent secrets handover`, as modules/avalanche-agent runs it
// after users and groups), then the service starts as that user and reads
// its secret: if it cannot, the unit fails and so does the switch.
const firstDeployActivation = `set -e
id %[1]s >/dev/null 2>&1 || /usr/sbin/useradd --system --no-create-home --user-group %[1]s
%[2]s secrets handover --config %[3]s --system "$systemConfig"
/usr/bin/setpriv --reuid %[1]s --regid %[1]s --clear-groups /bin/cat %[4]s/kanidm/admin > %[5]s
`

// Issue 25 item 10: a fresh host's first deployment declares secrets for a
// user that only this deployment's activation creates (kanidm, step-ca,
// vaultwarden on mysecrets). The secret is installed as root's, the switch
// creates the user and hands it over before the service starts, and the
// deployment succeeds; after it the secret is the user's.
func TestFirstDeployCreatesTheSecretsOwner(t *testing.T) {
	nixtest.Require(t)
	secretstest.RequireMount(t)
	name := fmt.Sprintf("avt-kanidm-%d", os.Getpid()%100000)
	if _, err := user.Lookup(name); err == nil {
		t.Fatalf("user %s exists already; remove it (userdel %s)", name, name)
	}
	t.Cleanup(func() { exec.Command("/usr/sbin/userdel", name).Run() })
	h := newSecretsHost(t)
	for _, d := range []string{filepath.Dir(h.dir), h.dir} { // t.TempDir is 0700: let kanidm reach secrets.dir
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	agent := filepath.Join(t.TempDir(), "avalanche-agent")
	if out, err := exec.Command("go", "build", "-o", agent, "../../cmd/avalanche-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	read := filepath.Join(h.dir, "read-by-kanidm")
	h.opts.SecretsManifest = `{"version": 1, "secrets": [
  {"name": "kanidm/admin", "sopsFile": "${./secrets/db.yaml}", "key": "db/password",
   "owner": "` + name + `", "mode": "0400", "restartUnits": ["kanidm.service"]}]}`
	h.opts.Activate = fmt.Sprintf(firstDeployActivation, name, agent, h.cfg.Path, h.cfg.Secrets.Dir, read)
	h.commit(t, "mysecrets, freshly installed", dbYAML(t, dbV1, h.key), "")
	h.start(t)

	s := h.status(t)
	if s.Deployed == nil || s.Deployed.Result != "deployed" {
		t.Fatalf("after the first deployment: deployed %+v, last error %q; want it deployed", s.Deployed, s.LastError)
	}
	if b, _ := os.ReadFile(read); string(b) != dbV1 {
		t.Errorf("kanidm read %q at its start; want %q", b, dbV1)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(h.cfg.Secrets.Dir, "kanidm", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if strconv.Itoa(int(st.Uid)) != u.Uid || strconv.Itoa(int(st.Gid)) != u.Gid || fi.Mode().Perm() != 0o400 {
		t.Errorf("kanidm/admin is %d:%d %v; want %s:%s 0400", st.Uid, st.Gid, fi.Mode().Perm(), u.Uid, u.Gid)
	}
	if acts := h.activations(t); len(acts) != 1 || !strings.HasPrefix(acts[0], "switch ") {
		t.Errorf("activations %q; want the one switch, no rollback", acts)
	}
}

// Without the module's step in the activation, the agent hands the secret
// over itself once the switch is done; an owner the system never creates
// is the commit's fault, found then.
func TestAgentHandsOverAfterTheSwitch(t *testing.T) {
	nixtest.Require(t)
	secretstest.RequireMount(t)
	for _, tt := range []struct {
		name     string
		activate string
		want     string // "" deployed, else the refusal
	}{
		{"the activation creates the owner", "id %[1]s >/dev/null 2>&1 || /usr/sbin/useradd --system --no-create-home --user-group %[1]s\n", ""},
		{"nothing creates the owner", ": %[1]s is never created\n", "does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("avt-vw-%d", os.Getpid()%100000)
			t.Cleanup(func() { exec.Command("/usr/sbin/userdel", name).Run() })
			h := newSecretsHost(t)
			h.opts.SecretsManifest = `{"version": 1, "secrets": [
  {"name": "vaultwarden.env", "sopsFile": "${./secrets/db.yaml}", "key": "db/password", "owner": "` + name + `"}]}`
			h.opts.Activate = fmt.Sprintf(tt.activate, name)
			c := h.commit(t, "mysecrets, freshly installed", dbYAML(t, dbV2, h.key), "")
			h.start(t)
			st := h.state(t)
			if tt.want != "" {
				if b := st.IsBad(c); b == nil || !strings.Contains(b.Reason, tt.want) {
					t.Errorf("IsBad(%s) = %+v; want refused with %q", c, b, tt.want)
				}
				return
			}
			if st.Deployed == nil || st.Deployed.Commit != c {
				t.Fatalf("deployed %+v, last error %+v; want %s deployed", st.Deployed, st.LastError, c)
			}
			u, _ := user.Lookup(name)
			fi, err := os.Stat(filepath.Join(h.cfg.Secrets.Dir, "vaultwarden.env"))
			if err != nil || u == nil || strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)) != u.Uid {
				t.Errorf("vaultwarden.env = %v, %v; want owned by %s (%+v)", fi, err, name, u)
			}
		})
	}
}
