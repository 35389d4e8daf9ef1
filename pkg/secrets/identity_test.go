package secrets

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// TestSSHToAge checks the Edwards-to-Montgomery public key against the
// X25519 public key of the derived scalar: two independent computations.
func TestSSHToAge(t *testing.T) {
	for i := 0; i < 20; i++ {
		k := newSSHKey(t)
		identity, recipient, err := SSHToAge(k.key)
		if err != nil {
			t.Fatal(err)
		}
		id, err := age.ParseX25519Identity(identity)
		if err != nil {
			t.Fatalf("ParseX25519Identity(derived) = %v", err)
		}
		if got := id.Recipient().String(); got != recipient {
			t.Errorf("derived identity's recipient = %q; want %q", got, recipient)
		}
		if id.String() != identity {
			t.Errorf("age re-encodes the derived identity as %q; want %q", id.String(), identity)
		}
	}
}

func TestBech32MatchesAge(t *testing.T) {
	for i := 0; i < 20; i++ {
		scalar := make([]byte, 32)
		rand.Read(scalar)
		enc, err := bech32Encode("AGE-SECRET-KEY-", scalar)
		if err != nil {
			t.Fatal(err)
		}
		id, err := age.ParseX25519Identity(enc)
		if err != nil {
			t.Fatalf("ParseX25519Identity(%q) = %v", enc, err)
		}
		if id.String() != enc {
			t.Errorf("bech32Encode = %q; age says %q", enc, id.String())
		}
	}
}

// TestSSHToAgeTool compares with the ssh-to-age tool when it is installed.
func TestSSHToAgeTool(t *testing.T) {
	tool, err := exec.LookPath("ssh-to-age")
	if err != nil {
		t.Skip("ssh-to-age not installed")
	}
	k := newSSHKey(t)
	if err := os.WriteFile(k.file+".pub", []byte(k.native+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pub, err := exec.Command(tool, "-i", k.file+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := exec.Command(tool, "-private-key", "-i", k.file).Output()
	if err != nil {
		t.Fatal(err)
	}
	identity, recipient, _ := SSHToAge(k.key)
	if strings.TrimSpace(string(pub)) != recipient || strings.TrimSpace(string(priv)) != identity {
		t.Errorf("ssh-to-age recipient = %s, SSHToAge = %s (or the private keys differ)", pub, recipient)
	}
}

func TestLoadIdentities(t *testing.T) {
	a := newAgeKey(t)
	s := newSSHKey(t)
	ids := loadIDs(t, []string{a.file}, []string{s.file})
	want := []string{a.recipient, s.derivedAge, s.native}
	if diff := cmp.Diff(want, ids.Recipients()); diff != "" {
		t.Errorf("Recipients() mismatch (-want +got):\n%s", diff)
	}
	if len(ids.age) != 2 || len(ids.ssh) != 1 {
		t.Errorf("LoadIdentities() holds %d age and %d ssh identities; want 2 and 1", len(ids.age), len(ids.ssh))
	}
}

func TestLoadIdentitiesErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key\n"), 0o600)
	s := newSSHKey(t)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(s.key, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked")
	os.WriteFile(locked, pemEncode(block), 0o600)
	missing := filepath.Join(dir, "missing")
	_, err = LoadIdentities([]string{garbage, missing}, []string{locked, garbage})
	if err == nil {
		t.Fatal("LoadIdentities(bad files) = nil; want errors")
	}
	for _, w := range []string{"age key file " + garbage, "age key file " + missing, "ssh key " + locked + ": key is passphrase-protected", "ssh key " + garbage} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("LoadIdentities() = %v; want it to contain %q", err, w)
		}
	}
	if _, err := LoadIdentities(nil, nil); err == nil {
		t.Error("LoadIdentities(nil, nil) = nil; want an error")
	}
}
