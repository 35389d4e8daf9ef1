package secrets

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/edwards25519"
	"golang.org/x/crypto/ssh"
)

// Identities is a host's decryption key material, held in memory only. The
// zero value holds no identity.
type Identities struct {
	// age holds AGE-SECRET-KEY-… strings: lines of age key files and the
	// X25519 identities derived from SSH ed25519 keys.
	age []string
	// ssh holds OpenSSH private keys, used as native ssh-ed25519 (or
	// ssh-rsa) age identities.
	ssh [][]byte
	// recipients are the public forms, in load order, without duplicates.
	recipients []string
}

// LoadIdentities reads age identity files and OpenSSH private keys. An
// ed25519 SSH key yields two identities: the X25519 key ssh-to-age derives
// from it and the native ssh-ed25519 one. Every unreadable or malformed
// file is reported.
func LoadIdentities(ageKeyFiles, sshKeyPaths []string) (*Identities, error) {
	ids := &Identities{}
	var errs []error
	for _, p := range ageKeyFiles {
		if err := ids.addAgeFile(p); err != nil {
			errs = append(errs, fmt.Errorf("age key file %s: %w", p, err))
		}
	}
	for _, p := range sshKeyPaths {
		if err := ids.addSSHFile(p); err != nil {
			errs = append(errs, fmt.Errorf("ssh key %s: %w", p, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if ids.Empty() {
		return nil, errors.New("no age key file or ssh key configured")
	}
	return ids, nil
}

// Empty reports whether ids holds no identity at all.
func (ids *Identities) Empty() bool {
	return ids == nil || len(ids.age) == 0 && len(ids.ssh) == 0
}

// Recipients returns the public keys matching the identities, in the
// forms .sops.yaml accepts: "age1…" and "ssh-ed25519 AAAA…".
func (ids *Identities) Recipients() []string {
	return append([]string(nil), ids.recipients...)
}

func (ids *Identities) addRecipient(r string) {
	for _, have := range ids.recipients {
		if have == r {
			return
		}
	}
	ids.recipients = append(ids.recipients, r)
}

func (ids *Identities) addAgeFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return ids.addAgeKeys(data)
}

// addAgeKeys parses an age identity file's contents.
func (ids *Identities) addAgeKeys(data []byte) error {
	parsed, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		return err
	}
	for _, id := range parsed {
		switch id := id.(type) {
		case *age.X25519Identity:
			ids.age = append(ids.age, id.String())
			ids.addRecipient(id.Recipient().String())
		case *age.HybridIdentity:
			ids.age = append(ids.age, id.String())
			ids.addRecipient(id.Recipient().String())
		default:
			return fmt.Errorf("unsupported identity type %T", id)
		}
	}
	return nil
}

func (ids *Identities) addSSHFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return ids.addSSHKey(data)
}

// addSSHKey adds an unencrypted OpenSSH private key.
func (ids *Identities) addSSHKey(pemBytes []byte) error {
	key, err := ssh.ParseRawPrivateKey(pemBytes)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return errors.New("key is passphrase-protected, which is not supported")
	}
	if err != nil {
		return fmt.Errorf("parsing private key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return fmt.Errorf("parsing private key: %w", err)
	}
	if ed, ok := key.(*ed25519.PrivateKey); ok {
		if err := ids.addDerived(*ed); err != nil {
			return err
		}
	} else if signer.PublicKey().Type() != ssh.KeyAlgoRSA {
		return fmt.Errorf("key type %s is not supported (want ed25519 or rsa)", signer.PublicKey().Type())
	}
	ids.ssh = append(ids.ssh, pemBytes)
	ids.addRecipient(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))))
	return nil
}

// addDerived adds the X25519 identity ssh-to-age derives from key.
func (ids *Identities) addDerived(key ed25519.PrivateKey) error {
	identity, recipient, err := SSHToAge(key)
	if err != nil {
		return err
	}
	ids.age = append(ids.age, identity)
	ids.addRecipient(recipient)
	return nil
}

// SSHToAge converts an ed25519 key the way ssh-to-age does: the X25519
// scalar is the first half of SHA-512(seed) (X25519 clamps it when used; like
// ssh-to-age the encoded form is not clamped), and the public key is the
// Montgomery form of the Edwards point.
func SSHToAge(key ed25519.PrivateKey) (identity, recipient string, err error) {
	h := sha512.Sum512(key.Seed())
	identity, err = bech32Encode("AGE-SECRET-KEY-", h[:32])
	if err != nil {
		return "", "", err
	}
	recipient, err = SSHPublicToAge(key.Public().(ed25519.PublicKey))
	if err != nil {
		return "", "", err
	}
	return identity, recipient, nil
}

// SSHPublicToAge converts an ed25519 public key (an SSH host key) to the
// age X25519 recipient ssh-to-age prints for it: the Montgomery form of the
// Edwards point, bech32-encoded as age1….
func SSHPublicToAge(pub ed25519.PublicKey) (string, error) {
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return "", fmt.Errorf("converting ed25519 public key: %w", err)
	}
	return bech32Encode("age", p.BytesMontgomery())
}
