package gittest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// NewSSHKey generates an ed25519 key pair in dir as name (OpenSSH private
// key, mode 0600) and returns the private key file and the public key in
// authorized_keys format.
func NewSSHKey(t testing.TB, dir, name string) (keyFile, publicKey string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(dir, name)
	writeFile(t, keyFile, string(pem.EncodeToMemory(block)))
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	publicKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	writeFile(t, keyFile+".pub", publicKey+"\n")
	return keyFile, publicKey
}

// NewGPGKey generates an OpenPGP key for name and returns the entity (with
// private key) and its armored public key.
func NewGPGKey(t testing.TB, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", strings.ToLower(name)+"@avalanche.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return e, buf.String()
}

// CommitGPGSigned commits like Commit and then replaces the new commit
// with an identical one signed by key, using go-git's signing support.
func (w *WorkRepo) CommitGPGSigned(t testing.TB, files map[string]string, msg string, key *openpgp.Entity) string {
	t.Helper()
	w.Commit(t, files, msg)
	return w.rewriteHead(t, func(c *object.Commit) {
		payload := encode(t, c.EncodeWithoutSignature)
		var sig bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&sig, key, bytes.NewReader(payload), nil); err != nil {
			t.Fatal(err)
		}
		c.PGPSignature = sig.String()
	})
}

// Tamper replaces HEAD with a copy whose message is changed but whose
// signature header is kept, and returns the new hash.
func (w *WorkRepo) Tamper(t testing.TB) string {
	t.Helper()
	return w.rewriteHead(t, func(c *object.Commit) { c.Message += "tampered\n" })
}

// rewriteHead stores a modified copy of the HEAD commit and points the
// current branch at it.
func (w *WorkRepo) rewriteHead(t testing.TB, edit func(*object.Commit)) string {
	t.Helper()
	repo, err := git.PlainOpen(w.Dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	c, err := repo.CommitObject(head.Hash())
	if err != nil {
		t.Fatal(err)
	}
	edit(c)
	obj := repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(head.Name(), h)); err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func encode(t testing.TB, enc func(plumbing.EncodedObject) error) []byte {
	t.Helper()
	o := &plumbing.MemoryObject{}
	if err := enc(o); err != nil {
		t.Fatal(err)
	}
	rd, err := o.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rd); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// AllowedSigner returns an allowed_signers line for principal and an
// authorized_keys-format public key, restricted to the git namespace.
func AllowedSigner(principal, publicKey string) string {
	return principal + ` namespaces="git" ` + publicKey
}
