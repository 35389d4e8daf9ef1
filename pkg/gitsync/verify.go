package gitsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// sshNamespace is the sshsig namespace git signs commits in.
const sshNamespace = "git"

// Signers lists the keys allowed to sign deployable commits. The zero
// value disables signature checks.
type Signers struct {
	// AllowedSignersFile is in git's gpg.ssh.allowedSignersFile format.
	AllowedSignersFile string
	// GPGKeyFiles hold OpenPGP public keys, armored or binary.
	GPGKeyFiles []string
}

// Enabled reports whether any signer is configured.
func (s Signers) Enabled() bool {
	return s.AllowedSignersFile != "" || len(s.GPGKeyFiles) > 0
}

// VerifyCommit checks that commit carries a valid SSH or OpenPGP signature
// from one of s, and returns who signed it: the allowed_signers principals
// or the OpenPGP identity. It returns "" and nil when s is not Enabled.
// Failures wrap ErrUnsigned or ErrBadSignature. The verdict is remembered
// until a key file changes.
func (r *Repo) VerifyCommit(ctx context.Context, commit string, s Signers) (string, error) {
	if !s.Enabled() {
		return "", nil
	}
	h, err := parseHash(commit)
	if err != nil {
		return "", err
	}
	keys, ok := s.identity(time.Now())
	k := verdictKey{commit: h, keys: keys}
	if v, known := r.memo.verdict(k); ok && known {
		return v.signer, v.err
	}
	signer, err := r.verifyCommit(h, s)
	if ok {
		r.memo.rememberVerdict(k, verdict{signer: signer, err: err})
	}
	return signer, err
}

// verifyCommit reads commit h and verifies its signature.
func (r *Repo) verifyCommit(h plumbing.Hash, s Signers) (string, error) {
	l, err := openLocal(r.Dir)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", r.Dir, err)
	}
	defer l.Close()
	c, err := l.repo.CommitObject(h)
	if err != nil {
		return "", fmt.Errorf("reading commit %s: %w", h, err)
	}
	signer, err := s.verify(c)
	if err != nil {
		return "", fmt.Errorf("verifying commit %s: %w", h, err)
	}
	return signer, nil
}

func (s Signers) verify(c *object.Commit) (string, error) {
	sig := c.PGPSignature
	payload, err := signedPayload(c)
	if err != nil {
		return "", err
	}
	switch {
	case sig == "":
		return "", ErrUnsigned
	case strings.Contains(sig, "-----BEGIN SSH SIGNATURE-----"):
		return s.verifySSH(sig, payload, c)
	case strings.Contains(sig, "-----BEGIN PGP SIGNATURE-----"):
		return s.verifyGPG(sig, payload)
	}
	return "", fmt.Errorf("%w: unsupported signature format", ErrBadSignature)
}

// signedPayload returns the commit as it was before the signature header
// was added: what the signature covers.
func signedPayload(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	rd, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

func (s Signers) verifySSH(armored string, payload []byte, c *object.Commit) (string, error) {
	p := SSHPolicy{AllowedSignersFile: s.AllowedSignersFile, Namespace: sshNamespace}
	return p.Verify(armored, payload, c.Committer.When)
}

func (s Signers) verifyGPG(armored string, payload []byte) (string, error) {
	if len(s.GPGKeyFiles) == 0 {
		return "", fmt.Errorf("%w: gpg signature but no gpg keys configured", ErrBadSignature)
	}
	ring, err := readKeyRing(s.GPGKeyFiles)
	if err != nil {
		return "", err
	}
	e, err := openpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(payload), strings.NewReader(armored), nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return identity(e), nil
}

// readKeyRing reads OpenPGP public keys from files, armored or binary.
func readKeyRing(files []string) (openpgp.EntityList, error) {
	var ring openpgp.EntityList
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading gpg key: %w", err)
		}
		var el openpgp.EntityList
		if bytes.Contains(b, []byte("-----BEGIN PGP")) {
			el, err = readArmoredBlocks(b)
		} else {
			el, err = openpgp.ReadKeyRing(bytes.NewReader(b))
		}
		if err != nil {
			return nil, fmt.Errorf("reading gpg key %s: %w", f, err)
		}
		ring = append(ring, el...)
	}
	return ring, nil
}

// readArmoredBlocks reads every armored key block in b (a file may hold
// several exported keys one after another).
func readArmoredBlocks(b []byte) (openpgp.EntityList, error) {
	const begin = "-----BEGIN PGP"
	var ring openpgp.EntityList
	for {
		i := bytes.Index(b, []byte(begin))
		if i < 0 {
			break
		}
		b = b[i:]
		next := bytes.Index(b[len(begin):], []byte(begin))
		block := b
		if next >= 0 {
			block = b[:len(begin)+next]
		}
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(block))
		if err != nil {
			return nil, err
		}
		ring = append(ring, el...)
		if next < 0 {
			break
		}
		b = b[len(begin)+next:]
	}
	if len(ring) == 0 {
		return nil, errors.New("no keys found")
	}
	return ring, nil
}

// identity names an OpenPGP signer by its primary user ID and fingerprint.
func identity(e *openpgp.Entity) string {
	fp := fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)
	if id := e.PrimaryIdentity(); id != nil && id.Name != "" {
		return id.Name + " " + fp
	}
	return fp
}
