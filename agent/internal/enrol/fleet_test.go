package enrol

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	secretstest.RemoveHelper()
	os.Exit(code)
}

// repoRoot is the real repository, which the scratch fleets copy.
const repoRoot = "../../.."

// sshHost is a host's generated SSH ed25519 host key pair.
type sshHost struct {
	private string // private key file
	pub     string // public key file (.pub)
	age     string // its age recipient
}

func newSSHHost(t *testing.T) sshHost {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "root@host")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := sshHost{private: filepath.Join(dir, "ssh_host_ed25519_key"), pub: filepath.Join(dir, "ssh_host_ed25519_key.pub")}
	sshPub, _ := ssh.NewPublicKey(pub)
	writeFile(t, h.private, string(pem.EncodeToMemory(block)))
	writeFile(t, h.pub, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))+" root@host\n")
	if h.age, err = secrets.SSHPublicToAge(pub); err != nil {
		t.Fatal(err)
	}
	return h
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fleet is a scratch copy of the repository's fleet files with every
// placeholder recipient replaced by a generated key and real sops files:
// each host's secrets.yaml, cloud/, kubernetes/ and shared/ (a folder this
// test adds, for eagle, possum and the admin).
type fleet struct {
	root  string
	admin secretstest.AgeKey
	hosts map[string]sshHost
	files []string // the sops files, relative
}

var placeholderRE = regexp.MustCompile(`age1…([a-z0-9-]+)-placeholder`)

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{root: t.TempDir(), admin: secretstest.NewAgeKey(t), hosts: map[string]sshHost{}}
	for _, p := range []string{InventoryFile, "nixos/profiles", "nixos/hosts", "secrets"} {
		copyTree(t, filepath.Join(repoRoot, p), filepath.Join(f.root, p))
	}
	conf, err := os.ReadFile(filepath.Join(repoRoot, SopsConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	text := placeholderRE.ReplaceAllStringFunc(string(conf), func(m string) string {
		name := placeholderRE.FindStringSubmatch(m)[1]
		if name == "admin" {
			return f.admin.Recipient
		}
		f.hosts[name] = newSSHHost(t)
		return f.hosts[name].age
	})
	shared := "  - path_regex: (^|/)secrets/shared/.+$\n    key_groups:\n      - age: [*eagle, *possum, *admin]\n"
	text = strings.Replace(text, "  - path_regex: (^|/)secrets/cloud/", shared+"  - path_regex: (^|/)secrets/cloud/", 1)
	writeFile(t, filepath.Join(f.root, SopsConfigFile), text)
	f.encrypt(t, "secrets/nixos/eagle/secrets.yaml", "forgejo:\n  db: eagle-db-password\n", "eagle")
	f.encrypt(t, "secrets/nixos/possum/secrets.yaml", "garage:\n  env: possum-garage-env\n", "possum")
	f.encrypt(t, "secrets/nixos/possum/backup.env", "RESTIC_PASSWORD=possum-restic\n", "possum")
	f.encrypt(t, "secrets/cloud/exit-node/secrets.yaml", "tailscale: cloud-ts-key\n", "exit-node")
	f.encrypt(t, "secrets/kubernetes/apps/marmithon.yaml", "irc: cluster-irc\n", "cluster")
	f.encrypt(t, "secrets/shared/wifi.yaml", "psk: shared-wifi\n", "eagle", "possum")
	secretstest.Helper(t)                       // built before the environment below changes
	t.Setenv("SOPS_AGE_KEY_FILE", f.admin.File) // the admin's key, as sops finds it
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())    // and no keys.txt of this machine
	return f
}

// encrypt writes a sops file for the admin and the named hosts' keys.
func (f *fleet) encrypt(t *testing.T, rel, plain string, hosts ...string) {
	t.Helper()
	recipients := []string{f.admin.Recipient}
	for _, h := range hosts {
		recipients = append(recipients, f.hosts[h].age)
	}
	format := map[string]string{".yaml": "yaml", ".env": "dotenv"}[filepath.Ext(rel)]
	writeFile(t, filepath.Join(f.root, rel), string(secretstest.Encrypt(t, format, plain, recipients...)))
	f.files = append(f.files, rel)
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err == nil {
			writeFile(t, filepath.Join(dst, rel), string(b))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// repo is the scratch fleet as the commands see it.
func (f *fleet) repo() *Repo { return &Repo{Root: f.root} }

// readable decrypts every given sops file with one SSH host key, as the
// agent on that host would (avalanche-decrypt, the key as X25519 and as
// ssh-ed25519 identity), and returns the files it can read.
func (f *fleet) readable(t *testing.T, key string, files []string) []string {
	t.Helper()
	ids, err := secrets.LoadIdentities(nil, []string{key})
	if err != nil {
		t.Fatal(err)
	}
	return f.check(t, ids, files)
}

// adminReadable is readable for the admin's age key.
func (f *fleet) adminReadable(t *testing.T, files []string) []string {
	t.Helper()
	ids, err := secrets.LoadIdentities([]string{f.admin.File}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.check(t, ids, files)
}

func (f *fleet) check(t *testing.T, ids *secrets.Identities, files []string) []string {
	t.Helper()
	m := &secrets.Manifest{Version: 1}
	for i, file := range files {
		m.Secrets = append(m.Secrets, secrets.Secret{Name: fmt.Sprint(i), SopsFile: filepath.Join(f.root, file)})
	}
	d := &secrets.Decrypter{Helper: secretstest.Helper(t)}
	var ok []string
	for i, r := range secrets.Check(context.Background(), d, ids, m) {
		if r.Err == nil {
			ok = append(ok, files[i])
		} else if !strings.Contains(r.Err.Error(), "not encrypted to this host") {
			t.Errorf("decrypting %s: %v; want success or `not encrypted to this host`", files[i], r.Err)
		}
	}
	return ok
}

// snapshot hashes every file under root, to prove that nothing changed.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requireNix fails when nix-instantiate is missing: the inventory edits
// are proven by evaluating them.
func requireNix(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatalf("nix-instantiate is needed to check inventory edits: %v (install nix-bin: .ci/install)", err)
	}
}
