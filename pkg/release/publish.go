package release

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
)

// Signer signs release commits with the builder's SSH key.
type Signer struct {
	key ssh.Signer
}

// LoadSigner reads an unencrypted OpenSSH private key (ssh-keygen -t ed25519).
func LoadSigner(keyFile string) (*Signer, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading release key: %w", err)
	}
	key, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parsing release key %s: %w", keyFile, err)
	}
	return &Signer{key: key}, nil
}

// PublicKey returns the key that verifies this signer's releases.
func (s *Signer) PublicKey() ssh.PublicKey { return s.key.PublicKey() }

// Verify implements Verifier for this signer's own key: the builder uses it
// to recognise the releases it already published.
func (s *Signer) Verify(armored string, payload []byte, _ time.Time) (string, error) {
	sig, err := sshsig.Unarmor([]byte(armored))
	if err != nil {
		return "", fmt.Errorf("parsing ssh signature: %w", err)
	}
	if err := sshsig.Verify(bytes.NewReader(payload), sig, s.PublicKey(), sig.HashAlgorithm, Namespace); err != nil {
		return "", err
	}
	return ssh.FingerprintSHA256(s.PublicKey()), nil
}

// Commit writes rel as a signed commit on top of the local branch of the
// bare repository repoDir. It returns the branch's head ("" when it does
// not exist) and the new commit, the two arguments gitsync's Repo.Push
// needs to publish it. The local branch does not move: a release exists
// once the push landed, and the next fetch brings it back.
func Commit(repoDir, branch string, rel Release, s *Signer) (old, commit string, err error) {
	if branch == "" {
		branch = Branch
	}
	doc, err := rel.Encode()
	if err != nil {
		return "", "", err
	}
	repo, closeRepo, err := open(repoDir)
	if err != nil {
		return "", "", err
	}
	defer closeRepo()
	name := plumbing.NewBranchReferenceName(branch)
	c := &object.Commit{
		Author:  object.Signature{Name: rel.Builder, Email: "avalanche-builder@" + rel.Builder, When: rel.Time},
		Message: fmt.Sprintf("release %s by %s\n\n%s\n", short(rel.Commit), rel.Builder, summary(rel)),
	}
	c.Committer = c.Author
	if ref, err := repo.Reference(name, true); err == nil {
		old = ref.Hash().String()
		c.ParentHashes = []plumbing.Hash{ref.Hash()}
	} else if !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return "", "", fmt.Errorf("reading branch %s: %w", branch, err)
	}
	st := repo.Storer
	if c.TreeHash, err = writeTree(st, doc); err != nil {
		return "", "", err
	}
	if err := s.sign(c); err != nil {
		return "", "", err
	}
	h, err := store(st, c.Encode)
	if err != nil {
		return "", "", err
	}
	return old, h.String(), nil
}

// sign adds an SSH signature in Namespace over the commit as encoded so far.
func (s *Signer) sign(c *object.Commit) error {
	payload, err := gitsync.CommitPayload(c)
	if err != nil {
		return err
	}
	sig, err := sshsig.Sign(bytes.NewReader(payload), s.key, sshsig.HashSHA512, Namespace)
	if err != nil {
		return fmt.Errorf("signing release: %w", err)
	}
	c.PGPSignature = string(sshsig.Armor(sig))
	return nil
}

// writeTree stores a blob with doc and a tree holding it as File.
func writeTree(st storer.EncodedObjectStorer, doc []byte) (plumbing.Hash, error) {
	blob, err := store(st, func(o plumbing.EncodedObject) error {
		o.SetType(plumbing.BlobObject)
		w, err := o.Writer()
		if err != nil {
			return err
		}
		if _, err := w.Write(doc); err != nil {
			return err
		}
		return w.Close()
	})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree := &object.Tree{Entries: []object.TreeEntry{{Name: File, Mode: filemode.Regular, Hash: blob}}}
	return store(st, tree.Encode)
}

// store encodes one object into st and returns its hash.
func store(st storer.EncodedObjectStorer, encode func(plumbing.EncodedObject) error) (plumbing.Hash, error) {
	o := st.NewEncodedObject()
	if err := encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := st.SetEncodedObject(o)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("writing release object: %w", err)
	}
	return h, nil
}

// summary is the commit message body: which hosts built and which failed.
func summary(r Release) string {
	if r.Error != "" {
		return "failed: " + r.Error
	}
	built, failed := 0, 0
	for _, h := range r.Hosts {
		if h.Error != "" {
			failed++
		} else {
			built++
		}
	}
	return fmt.Sprintf("%d hosts built, %d failed", built, failed)
}
