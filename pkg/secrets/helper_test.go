package secrets

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// helperPath is the avalanche-decrypt binary built once by TestMain.
var helperPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "avalanche-decrypt-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperPath = filepath.Join(dir, HelperName)
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "build", "-o", helperPath, "github.com/avalanche-fleet/avalanche/agent/cmd/avalanche-decrypt")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building helper: %v: %s\n", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ageKey is a generated age identity written to a key file.
type ageKey struct {
	file      string
	recipient string
}

func newAgeKey(t testing.TB) ageKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "keys.txt")
	content := "# created: test\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return ageKey{file: file, recipient: id.Recipient().String()}
}

// sshKey is a generated OpenSSH ed25519 key and its two recipient forms.
type sshKey struct {
	file       string
	key        ed25519.PrivateKey
	native     string // ssh-ed25519 AAAA…
	derivedAge string // age1… as ssh-to-age prints it
}

func newSSHKey(t testing.TB) sshKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "test@host")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ssh_host_ed25519_key")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	_, derived, err := SSHToAge(priv)
	if err != nil {
		t.Fatal(err)
	}
	native := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	return sshKey{file: file, key: priv, native: native, derivedAge: derived}
}

// encryptSops encrypts plain the way `sops encrypt` does, for the given
// recipients, and writes it to a file named after the format.
func encryptSops(t testing.TB, format, plain string, recipients ...string) string {
	t.Helper()
	return secretstest.EncryptFile(t, format, plain, recipients...)
}

func encryptBytes(t testing.TB, format, plain string, recipients ...string) []byte {
	t.Helper()
	return secretstest.Encrypt(t, format, plain, recipients...)
}

func loadIDs(t testing.TB, ageFiles, sshFiles []string) *Identities {
	t.Helper()
	ids, err := LoadIdentities(ageFiles, sshFiles)
	if err != nil {
		t.Fatalf("LoadIdentities(%q, %q) = %v", ageFiles, sshFiles, err)
	}
	return ids
}
