package enrol

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

// HostKey is a host's SSH ed25519 host key and the age recipient derived
// from it (as ssh-to-age derives it).
type HostKey struct {
	// SSH is the key as an authorized_keys line, without comment.
	SSH string
	// Age is the X25519 recipient, age1….
	Age string
}

// ParseHostKey reads the host's public key from data: a .pub file
// (`ssh-ed25519 AAAA… root@host`) or `ssh-keyscan` output (`host
// ssh-ed25519 AAAA…`, with `#` comment lines and other key types). name is
// the input's name for error messages. Exactly one ed25519 key must be there.
func ParseHostKey(name string, data []byte) (HostKey, error) {
	if bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		return HostKey{}, fmt.Errorf("%s is a private key; give the public one (ssh_host_ed25519_key.pub, or ssh-keyscan -t ed25519 HOST)", name)
	}
	var found []ssh.PublicKey
	var types []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := parseKeyLine(line)
		if err != nil {
			return HostKey{}, fmt.Errorf("%s line %d: not an SSH public key (want `ssh-ed25519 AAAA…` as in /etc/ssh/ssh_host_ed25519_key.pub, or ssh-keyscan output): %w", name, n, err)
		}
		if key.Type() != ssh.KeyAlgoED25519 {
			types = append(types, key.Type())
			continue
		}
		if !slices.ContainsFunc(found, func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), key.Marshal()) }) {
			found = append(found, key)
		}
	}
	switch {
	case len(found) == 0 && len(types) == 0:
		return HostKey{}, fmt.Errorf("%s holds no SSH public key (want `ssh-ed25519 AAAA…`, or ssh-keyscan -t ed25519 HOST output)", name)
	case len(found) == 0:
		return HostKey{}, fmt.Errorf("%s holds no ssh-ed25519 key, only %s: a host's age recipient comes from its ed25519 host key (ssh-keyscan -t ed25519 HOST)", name, strings.Join(types, ", "))
	case len(found) > 1:
		return HostKey{}, fmt.Errorf("%s holds %d different ssh-ed25519 keys; give the one host's key only", name, len(found))
	}
	return hostKeyFrom(found[0])
}

// parseKeyLine reads an authorized_keys line or a known_hosts line.
func parseKeyLine(line string) (ssh.PublicKey, error) {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err == nil {
		return key, nil
	}
	_, _, key, _, _, khErr := ssh.ParseKnownHosts([]byte(line))
	if khErr == nil {
		return key, nil
	}
	return nil, err
}

func hostKeyFrom(key ssh.PublicKey) (HostKey, error) {
	ck, ok := key.(ssh.CryptoPublicKey)
	if !ok {
		return HostKey{}, errors.New("ssh-ed25519 key without a public key")
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return HostKey{}, errors.New("ssh-ed25519 key that is not ed25519")
	}
	recipient, err := secrets.SSHPublicToAge(pub)
	if err != nil {
		return HostKey{}, err
	}
	return HostKey{SSH: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))), Age: recipient}, nil
}
