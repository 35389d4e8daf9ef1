package main

import (
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"github.com/avalanche-fleet/avalanche/pkg/secrets"
	sopsage "github.com/getsops/sops/v3/age"
	"golang.org/x/crypto/ssh"
)

// identities are the parsed keys of the request and the public keys they
// answer to, to explain a file that is not encrypted to this host.
type identities struct {
	parsed     sopsage.ParsedIdentities
	recipients map[string]bool
}

func parseIdentities(req *secrets.HelperRequest) (*identities, error) {
	ids := &identities{recipients: make(map[string]bool)}
	if len(req.AgeIdentities) > 0 {
		parsed, err := age.ParseIdentities(strings.NewReader(strings.Join(req.AgeIdentities, "\n")))
		if err != nil {
			return nil, fmt.Errorf("parsing age identities: %w", err)
		}
		for _, id := range parsed {
			ids.add(id)
		}
	}
	for i, k := range req.SSHKeys {
		if err := ids.addSSH([]byte(k)); err != nil {
			return nil, fmt.Errorf("parsing ssh key %d: %w", i, err)
		}
	}
	if len(ids.parsed) == 0 {
		// With no identity, sops' age key source would look in the
		// environment and the home directory: never let it.
		return nil, errors.New("request holds no identity")
	}
	return ids, nil
}

func (ids *identities) add(id age.Identity) {
	ids.parsed = append(ids.parsed, id)
	switch id := id.(type) {
	case *age.X25519Identity:
		ids.recipients[id.Recipient().String()] = true
	case *age.HybridIdentity:
		ids.recipients[id.Recipient().String()] = true
	}
}

func (ids *identities) addSSH(pemBytes []byte) error {
	id, err := agessh.ParseIdentity(pemBytes)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		return err
	}
	ids.parsed = append(ids.parsed, id)
	ids.recipients[sshRecipientKey(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))] = true
	return nil
}

// sshRecipientKey drops the comment of an "ssh-ed25519 AAAA… comment" line.
func sshRecipientKey(r string) string {
	f := strings.Fields(r)
	if len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return strings.TrimSpace(r)
}

// matches reports whether recipient belongs to one of the identities.
func (ids *identities) matches(recipient string) bool {
	r := strings.TrimSpace(recipient)
	if strings.HasPrefix(r, "ssh-") {
		r = sshRecipientKey(r)
	}
	return ids.recipients[r]
}
