// Package secretstest helps tests work with real SOPS files: it generates
// age identities, encrypts plain text exactly as `sops encrypt` does (with
// the sops library itself) and builds the avalanche-decrypt helper.
//
// It links github.com/getsops/sops, which pkg/secrets and the resident
// agent must not: only ever import it from _test.go files.
package secretstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
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
)

// HelperPackage is the import path of the avalanche-decrypt command.
const HelperPackage = "github.com/avalanche-fleet/avalanche/agent/cmd/avalanche-decrypt"

// Extensions maps each sops format to the file extension sops derives it
// from (binary is anything else).
var Extensions = map[string]string{"yaml": ".yaml", "json": ".json", "dotenv": ".env", "ini": ".ini", "binary": ".bin"}

// AgeKey is a generated age X25519 identity written to a key file.
type AgeKey struct {
	// File is an age key file (as age-keygen writes it), mode 0600.
	File string
	// Recipient is the public key, age1….
	Recipient string
}

// NewAgeKey generates an identity and writes its key file into t.TempDir().
func NewAgeKey(t testing.TB) AgeKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatalf("generating age identity: %v", err)
	}
	file := filepath.Join(t.TempDir(), "keys.txt")
	content := "# created: test\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return AgeKey{File: file, Recipient: id.Recipient().String()}
}

// Encrypt returns plain encrypted the way `sops encrypt` does for format
// (yaml, json, dotenv, ini or binary) to every recipient (age1… or
// ssh-ed25519 …), all in one key group. A binary plain may hold any bytes.
func Encrypt(t testing.TB, format, plain string, recipients ...string) []byte {
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
		t.Fatalf("encrypting %s: %v", format, err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatalf("emitting %s: %v", format, err)
	}
	return out
}

// EncryptFile encrypts plain like Encrypt and writes it to a new file in
// t.TempDir() named after the format ("secrets.yaml", "secrets.bin"…).
func EncryptFile(t testing.TB, format, plain string, recipients ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "secrets"+Extensions[format])
	if err := os.WriteFile(file, Encrypt(t, format, plain, recipients...), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

var helper struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Helper returns the path of the avalanche-decrypt binary, built on the
// first call of the test process into a temporary directory that
// RemoveHelper deletes (call it from TestMain after m.Run; without it the
// directory stays behind). The build runs in the calling package's
// directory, which must lie inside the avalanche module.
func Helper(t testing.TB) string {
	t.Helper()
	helper.once.Do(func() {
		helper.dir, helper.err = os.MkdirTemp("", "avalanche-decrypt-")
		if helper.err == nil {
			helper.path, helper.err = BuildHelper(helper.dir)
		}
	})
	if helper.err != nil {
		t.Fatalf("building %s: %v", HelperPackage, helper.err)
	}
	return helper.path
}

// RemoveHelper deletes the directory Helper built into, if any.
func RemoveHelper() {
	if helper.dir != "" {
		os.RemoveAll(helper.dir)
	}
}

// BuildHelper runs `go build` for avalanche-decrypt into dir and returns
// the binary's path.
func BuildHelper(dir string) (string, error) {
	out := filepath.Join(dir, "avalanche-decrypt")
	argv := []string{goTool(), "build", "-o", out, HelperPackage}
	if b, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %w: %s", argv, err, b)
	}
	return out, nil
}

// goTool is the go command of the toolchain running the test, else $PATH's.
func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// RequireMount fails t when this process may not mount a tmpfs (secrets
// generations need one): the tests run as root.
func RequireMount(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m")
	if err == nil {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		return
	}
	t.Fatalf("mounting a tmpfs (the secrets tests run as root, as .ci/test does): %v", err)
}
