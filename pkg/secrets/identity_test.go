package secrets

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
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

// libsodium converts ed25519 keys to X25519 (crypto_sign_ed25519_pk_to_curve25519
// and _sk_), the reference ssh-to-age follows. Debian's python3-nacl binds
// it; .ci/install installs it. Each input line is a hex seed; each output
// line the hex X25519 public and (clamped) private key.
const libsodiumScript = `
import sys, nacl.bindings as b
for line in sys.stdin:
    seed = bytes.fromhex(line.strip())
    pk, sk = b.crypto_sign_seed_keypair(seed)
    print(b.crypto_sign_ed25519_pk_to_curve25519(pk).hex(), b.crypto_sign_ed25519_sk_to_curve25519(sk).hex())
`

// TestSSHToAgeMatchesLibsodium compares SSHToAge and SSHPublicToAge with
// libsodium's conversion, an implementation independent of this one. (The
// ssh-to-age tool itself cannot be installed here: the Go module proxy
// refuses github.com/Mic92/ssh-to-age.)
func TestSSHToAgeMatchesLibsodium(t *testing.T) {
	const python = "/usr/bin/python3" // Debian's, where apt puts python3-nacl
	var keys []ed25519.PrivateKey
	var seeds strings.Builder
	for i := 0; i < 20; i++ {
		k := newSSHKey(t)
		keys = append(keys, k.key)
		seeds.WriteString(hex.EncodeToString(k.key.Seed()) + "\n")
	}
	cmd := exec.Command(python, "-c", libsodiumScript)
	cmd.Stdin = strings.NewReader(seeds.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s with python3-nacl (libsodium): %v: %s\ninstall it: apt-get install python3-nacl (.ci/install does)", python, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(keys) {
		t.Fatalf("libsodium printed %d lines for %d keys:\n%s", len(lines), len(keys), out)
	}
	for i, k := range keys {
		pubHex, privHex, _ := strings.Cut(lines[i], " ")
		pub, _ := hex.DecodeString(pubHex)
		want, err := bech32Encode("age", pub)
		if err != nil {
			t.Fatal(err)
		}
		identity, recipient, err := SSHToAge(k)
		if err != nil {
			t.Fatal(err)
		}
		fromPub, err := SSHPublicToAge(k.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if recipient != want || fromPub != want {
			t.Errorf("key %d: SSHToAge recipient = %s, SSHPublicToAge = %s; libsodium says %s", i, recipient, fromPub, want)
		}
		// The unclamped scalar ssh-to-age encodes and libsodium's clamped
		// one are the same X25519 private key.
		priv, _ := hex.DecodeString(privHex)
		sodiumID, err := bech32Encode("AGE-SECRET-KEY-", priv)
		if err != nil {
			t.Fatal(err)
		}
		ours, err1 := age.ParseX25519Identity(identity)
		theirs, err2 := age.ParseX25519Identity(sodiumID)
		if err1 != nil || err2 != nil || ours.Recipient().String() != theirs.Recipient().String() {
			t.Errorf("key %d: identity %s and libsodium's %s are not the same X25519 key (%v, %v)", i, identity, sodiumID, err1, err2)
		}
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
