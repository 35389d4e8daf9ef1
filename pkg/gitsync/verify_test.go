package gitsync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyCommit(t *testing.T) {
	gittest.Require(t, "ssh-keygen") // git signs with ssh-keygen -Y sign
	f, unsigned := newFixture(t)
	keys := t.TempDir()
	aliceKey, alicePub := gittest.NewSSHKey(t, keys, "alice")
	malloryKey, _ := gittest.NewSSHKey(t, keys, "mallory")
	bob, bobPub := gittest.NewGPGKey(t, "Bob")
	eve, _ := gittest.NewGPGKey(t, "Eve")

	sshGood := f.work.CommitSSHSigned(t, map[string]string{"a": "1"}, "alice signs", aliceKey)
	sshTampered := tamperAside(t, f, "tampered-ssh")
	sshWrong := f.work.CommitSSHSigned(t, map[string]string{"a": "2"}, "mallory signs", malloryKey)
	gpgGood := f.work.CommitGPGSigned(t, map[string]string{"a": "3"}, "bob signs", bob)
	gpgTampered := tamperAside(t, f, "tampered-gpg")
	gpgWrong := f.work.CommitGPGSigned(t, map[string]string{"a": "4"}, "eve signs", eve)
	f.push(t)
	r := newRepo(t, Remote{URL: f.bare}, "main", "tampered-ssh", "tampered-gpg")
	if heads := mustFetch(t, r).Heads; len(heads) != 3 {
		t.Fatalf("Fetch heads = %v; want 3 branches", heads)
	}

	allowed := writeTemp(t, "allowed_signers", "# fleet signers\n\n"+
		gittest.AllowedSigner("alice@fleet", alicePub)+"\n")
	otherNamespace := writeTemp(t, "allowed_signers", `alice@fleet namespaces="file" `+alicePub+"\n")
	expired := writeTemp(t, "allowed_signers", `alice@fleet valid-before="20000101" `+alicePub+"\n")
	signers := Signers{AllowedSignersFile: allowed, GPGKeyFiles: []string{writeTemp(t, "bob.asc", bobPub)}}

	for _, tc := range []struct {
		name    string
		commit  string
		signers Signers
		want    string
		wantErr error
	}{
		{"ssh good", sshGood, signers, "alice@fleet", nil},
		{"ssh tampered", sshTampered, signers, "", ErrBadSignature},
		{"ssh wrong key", sshWrong, signers, "", ErrBadSignature},
		{"ssh namespace not allowed", sshGood, Signers{AllowedSignersFile: otherNamespace}, "", ErrBadSignature},
		{"ssh key expired", sshGood, Signers{AllowedSignersFile: expired}, "", ErrBadSignature},
		{"ssh without allowed signers", sshGood, Signers{GPGKeyFiles: signers.GPGKeyFiles}, "", ErrBadSignature},
		{"gpg good", gpgGood, signers, "Bob <bob@avalanche.invalid> " + fingerprintOf(bob.PrimaryKey.Fingerprint), nil},
		{"gpg tampered", gpgTampered, signers, "", ErrBadSignature},
		{"gpg wrong key", gpgWrong, signers, "", ErrBadSignature},
		{"gpg without gpg keys", gpgGood, Signers{AllowedSignersFile: allowed}, "", ErrBadSignature},
		{"unsigned", unsigned, signers, "", ErrUnsigned},
		{"checks disabled", unsigned, Signers{}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.VerifyCommit(context.Background(), tc.commit, tc.signers)
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifyCommit(%.7s) = %q, %v; want %q, %v", tc.commit, got, err, tc.want, tc.wantErr)
			}
			if err != nil && (IsTransient(err) || !strings.Contains(err.Error(), tc.commit)) {
				t.Errorf("VerifyCommit(%.7s) error %q: want it permanent and naming the commit", tc.commit, err)
			}
		})
	}
}

// tamperAside pushes a tampered copy of HEAD to branch and leaves the
// current branch where it was.
func tamperAside(t *testing.T, f *fixture, branch string) string {
	t.Helper()
	head := f.work.Head(t)
	tampered := f.work.Tamper(t)
	f.work.Push(t, f.bare, tampered+":refs/heads/"+branch)
	f.work.Git(t, "reset", "-q", "--hard", head)
	return tampered
}

func fingerprintOf(fp []byte) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for _, c := range fp {
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

func TestParseAllowedSigners(t *testing.T) {
	_, pub := gittest.NewSSHKey(t, t.TempDir(), "k")
	file := strings.Join([]string{
		"# comment",
		"",
		"alice@fleet " + pub + " laptop key",
		`"bob@fleet,carol@*" namespaces="git,file",valid-after="20240101",valid-before="203001021504Z" ` + pub,
		"  dave " + pub,
	}, "\n")
	got, err := parseAllowedSigners([]byte(file), "allowed_signers")
	if err != nil {
		t.Fatalf("parseAllowedSigners = %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("parseAllowedSigners returned %d entries; want 3", len(got))
	}
	if got[1].principals != "bob@fleet,carol@*" || strings.Join(got[1].namespaces, "|") != "git|file" {
		t.Errorf("entry 2 = %+v; want principals bob@fleet,carol@* and namespaces git|file", got[1])
	}
	for _, tc := range []struct {
		at   string
		want bool
	}{{"20231231", false}, {"20240102", true}, {"20300102150400Z", false}} {
		at, _ := parseSignerTime(tc.at)
		if ok := got[1].allows("git", at); ok != tc.want {
			t.Errorf("allows(git, %s) = %v; want %v", tc.at, ok, tc.want)
		}
	}
	if got[1].allows("ssh", mustTime(t, "20250101")) {
		t.Errorf(`allows("ssh") = true; want false for namespaces="git,file"`)
	}

	for _, bad := range []string{
		"alice",
		"alice ssh-ed25519",
		"alice bogus-option " + pub,
		`alice valid-after="tomorrow" ` + pub,
		"alice ssh-ed25519 not-base64!!",
	} {
		if _, err := parseAllowedSigners([]byte(bad), "f"); err == nil {
			t.Errorf("parseAllowedSigners(%q) = nil error; want an error", bad)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := parseSignerTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
