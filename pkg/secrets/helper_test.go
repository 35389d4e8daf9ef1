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
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/version"
	"golang.org/x/crypto/ssh"
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

var extensions = map[string]string{"yaml": ".yaml", "json": ".json", "dotenv": ".env", "ini": ".ini", "binary": ".bin"}

// encryptSops encrypts plain the way `sops encrypt` does, for the given
// recipients, and writes it to a file named after the format.
func encryptSops(t testing.TB, format, plain string, recipients ...string) string {
	t.Helper()
	out := encryptBytes(t, format, plain, recipients...)
	file := filepath.Join(t.TempDir(), "secrets"+extensions[format])
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func encryptBytes(t testing.TB, format, plain string, recipients ...string) []byte {
	t.Helper()
	store := common.StoreForFormat(formats.FormatFromString(format), config.NewStoresConfig())
	branches, err := store.LoadPlainFile([]byte(plain))
	if err != nil {
		t.Fatalf("loading plain %s: %v", format, err)
	}
	var group sops.KeyGroup
	for _, r := range recipients {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			t.Fatalf("recipient %q: %v", r, err)
		}
		group = append(group, keys.MasterKey(mk))
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups:         []sops.KeyGroup{group},
		UnencryptedSuffix: sops.DefaultUnencryptedSuffix,
		Version:           version.Version,
	}}
	dataKey, errs := tree.GenerateDataKeyWithKeyServices([]keyservice.KeyServiceClient{keyservice.NewLocalClient()})
	if len(errs) > 0 {
		t.Fatalf("generating data key: %v", errs)
	}
	if err := common.EncryptTree(common.EncryptTreeOpts{DataKey: dataKey, Tree: &tree, Cipher: aes.NewCipher()}); err != nil {
		t.Fatalf("encrypting: %v", err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatalf("emitting: %v", err)
	}
	return out
}

func loadIDs(t testing.TB, ageFiles, sshFiles []string) *Identities {
	t.Helper()
	ids, err := LoadIdentities(ageFiles, sshFiles)
	if err != nil {
		t.Fatalf("LoadIdentities(%q, %q) = %v", ageFiles, sshFiles, err)
	}
	return ids
}
