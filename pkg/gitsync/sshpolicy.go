package gitsync

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// SSHPolicy says which SSH signatures (ssh-keygen -Y sign) are acceptable:
// made in Namespace by a key of an allowed_signers file, optionally only
// under one principal. Commits use namespace "git"; other signed documents
// (the builder's releases) use a namespace of their own, so that a key
// allowed for one cannot sign the other.
type SSHPolicy struct {
	// AllowedSignersFile is in ssh-keygen's ALLOWED SIGNERS format.
	AllowedSignersFile string
	// Namespace is the sshsig namespace the signature must be made in.
	Namespace string
	// Principal, when set, must match one of the entry's principal patterns
	// (as ssh-keygen -Y verify -I does).
	Principal string
	// Exclusive refuses an entry that would also accept commit signatures
	// (namespace "git"): a key trusted for Namespace must not be able to
	// sign deployable commits.
	Exclusive bool
}

// Verify checks the armored SSH signature over payload, made at time at,
// and returns the principals of the allowed signers entry that accepted it.
// Failures wrap ErrBadSignature, or ErrUnsigned when armored is empty.
func (p SSHPolicy) Verify(armored string, payload []byte, at time.Time) (string, error) {
	if strings.TrimSpace(armored) == "" {
		return "", ErrUnsigned
	}
	if p.AllowedSignersFile == "" {
		return "", fmt.Errorf("%w: ssh signature but no allowed signers file configured", ErrBadSignature)
	}
	signers, err := readAllowedSigners(p.AllowedSignersFile)
	if err != nil {
		return "", err
	}
	sig, err := sshsig.Unarmor([]byte(armored))
	if err != nil {
		return "", fmt.Errorf("%w: parsing ssh signature: %v", ErrBadSignature, err)
	}
	if sig.Namespace != p.Namespace {
		return "", fmt.Errorf("%w: ssh signature namespace %q, want %q", ErrBadSignature, sig.Namespace, p.Namespace)
	}
	want := sig.PublicKey.Marshal()
	for _, a := range signers {
		if !bytes.Equal(a.key.Marshal(), want) || !a.allows(p.Namespace, at) || !p.names(a) {
			continue
		}
		if p.Exclusive && a.allows(sshNamespace, at) {
			return "", fmt.Errorf("%w: the allowed signers entry %q for key %s also accepts commit signatures; "+
				"restrict it with namespaces=%q in %s", ErrBadSignature, a.principals,
				ssh.FingerprintSHA256(sig.PublicKey), p.Namespace, p.AllowedSignersFile)
		}
		if err := sshsig.Verify(bytes.NewReader(payload), sig, a.key, sig.HashAlgorithm, p.Namespace); err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return a.principals, nil
	}
	return "", fmt.Errorf("%w: key %s is not allowed to sign %s at %s by %s", ErrBadSignature,
		ssh.FingerprintSHA256(sig.PublicKey), p.what(), at.UTC().Format(time.RFC3339), p.AllowedSignersFile)
}

// names reports whether the entry's principals admit p.Principal.
func (p SSHPolicy) names(a allowedSigner) bool {
	return p.Principal == "" || matchAny(strings.Split(a.principals, ","), p.Principal)
}

// what names what the policy accepts, for messages.
func (p SSHPolicy) what() string {
	what := "in namespace " + p.Namespace
	if p.Namespace == sshNamespace {
		what = "git commits"
	}
	if p.Principal != "" {
		what += " as " + p.Principal
	}
	return what
}

// CommitPayload returns commit c as it was before its signature header was
// added: what a commit signature covers.
func CommitPayload(c *object.Commit) ([]byte, error) { return signedPayload(c) }
