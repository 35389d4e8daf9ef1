package enrol

import (
	"os"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

// TestParseHostKey reads a .pub file and ssh-keyscan output (comments,
// other key types) and gets the recipient the agent on that host derives
// from its private key.
func TestParseHostKey(t *testing.T) {
	h := newSSHHost(t)
	ids, err := secrets.LoadIdentities(nil, []string{h.private})
	if err != nil {
		t.Fatal(err)
	}
	want := ids.Recipients()[0] // the X25519 recipient derived from the private key
	pub, err := os.ReadFile(h.pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(pub))
	fields := strings.Fields(line)
	keyscan := "# raccoon06.internal:22 SSH-2.0-OpenSSH_9.9\nraccoon06.internal " + rsaKeyLine(t) + "\n" +
		"# raccoon06.internal:22 SSH-2.0-OpenSSH_9.9\nraccoon06.internal " + fields[0] + " " + fields[1] + "\n"
	for name, input := range map[string]string{".pub": line + "\n", "ssh-keyscan": keyscan, "twice": line + "\n" + line + "\n"} {
		got, err := ParseHostKey(name, []byte(input))
		if err != nil || got.Age != want || got.SSH != fields[0]+" "+fields[1] {
			t.Errorf("ParseHostKey(%s) = %+v, %v; want recipient %s", name, got, err, want)
		}
	}
	k, err := readHostKey("-", strings.NewReader(keyscan))
	if err != nil || k.Age != want {
		t.Errorf("readHostKey(-) = %+v, %v; want recipient %s", k, err, want)
	}
}

func TestParseHostKeyErrors(t *testing.T) {
	a, b := newSSHHost(t), newSSHHost(t)
	pa, _ := os.ReadFile(a.pub)
	pb, _ := os.ReadFile(b.pub)
	tests := map[string]struct{ input, want string }{
		"empty":       {"# only a comment\n", "in holds no SSH public key"},
		"two keys":    {string(pa) + string(pb), "in holds 2 different ssh-ed25519 keys"},
		"not a key":   {"hello world\n", "in line 1: not an SSH public key"},
		"only rsa":    {rsaKeyLine(t) + "\n", "in holds no ssh-ed25519 key, only ssh-rsa"},
		"private key": {"-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n", "in is a private key"},
	}
	for name, tt := range tests {
		if _, err := ParseHostKey("in", []byte(tt.input)); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseHostKey(%s) = %v; want an error starting %q", name, err, tt.want)
		}
	}
}
