package secrets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/getsops/sops/v3/decrypt"
	"github.com/google/go-cmp/cmp"
)

const (
	plainYAML   = "db:\n    password: hunter2\n    port_unencrypted: 5432\nlist:\n    - a\n    - b\n"
	plainJSON   = "{\n\t\"api\": {\n\t\t\"token\": \"t0k\"\n\t},\n\t\"n\": 3\n}"
	plainDotenv = "A=1\nB=two words\n"
	plainINI    = "[db]\npassword = pw\n"
	plainBinary = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
)

var plains = map[string]string{"yaml": plainYAML, "json": plainJSON, "dotenv": plainDotenv, "ini": plainINI, "binary": plainBinary}

// sopsDecrypt is the oracle: the sops library's own decrypt, which finds
// the key through SOPS_AGE_KEY_FILE.
func sopsDecrypt(t *testing.T, file, format string, key ageKey) []byte {
	t.Helper()
	t.Setenv("SOPS_AGE_KEY_FILE", key.file)
	out, err := decrypt.File(file, format)
	if err != nil {
		t.Fatalf("decrypt.File(%q) = %v", file, err)
	}
	return out
}

func TestDecryptFormats(t *testing.T) {
	key := newAgeKey(t)
	files := map[string]string{}
	for format, plain := range plains {
		files[format] = encryptSops(t, format, plain, key.recipient)
	}
	tests := []struct {
		name, format, key, want string
	}{
		{"yaml-nested", "yaml", "db/password", "hunter2"},
		{"yaml-int", "yaml", "db/port_unencrypted", "5432\n"},
		{"yaml-list", "yaml", "list/1", "b"},
		{"yaml-subtree", "yaml", "db", "password: hunter2\nport_unencrypted: 5432\n"},
		{"json-nested", "json", "api/token", "t0k"},
		{"json-number", "json", "n", "3"},
		{"dotenv-key", "dotenv", "B", "two words"},
		{"ini-key", "ini", "db/password", "pw"},
		{"binary-data", "binary", "data", plainBinary},
	}
	for format := range plains {
		// The whole file must be exactly what `sops decrypt` prints.
		want := string(sopsDecrypt(t, files[format], format, key))
		tests = append(tests, struct{ name, format, key, want string }{"whole-" + format, format, "", want})
	}
	var secrets []Secret
	for _, tt := range tests {
		// Format left empty: derived from the extension like sops does.
		secrets = append(secrets, Secret{Name: tt.name, SopsFile: files[tt.format]})
		secrets[len(secrets)-1].Key = tt.key
	}
	d := &Decrypter{Helper: helperPath}
	got, err := d.Decrypt(context.Background(), loadIDs(t, []string{key.file}, nil), secrets)
	if err != nil {
		t.Fatalf("Decrypt() = %v", err)
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, string(got[tt.name])); diff != "" {
			t.Errorf("Decrypt()[%q] mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
	if string(got["whole-binary"]) != plainBinary || string(got["whole-dotenv"]) != plainDotenv {
		t.Errorf("whole binary/dotenv files are not the original plaintext: %q, %q", got["whole-binary"], got["whole-dotenv"])
	}
}

func TestDecryptSSHRecipientStyles(t *testing.T) {
	host := newSSHKey(t)
	tests := []struct {
		name, recipient string
	}{
		{"ssh-to-age", host.derivedAge},
		{"native-ssh-ed25519", host.native},
	}
	ids := loadIDs(t, nil, []string{host.file})
	d := &Decrypter{Helper: helperPath}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := encryptSops(t, "yaml", plainYAML, tt.recipient)
			got, err := d.Decrypt(context.Background(), ids, []Secret{{Name: "pw", SopsFile: file, Key: "db/password"}})
			if err != nil {
				t.Fatalf("Decrypt() = %v", err)
			}
			if string(got["pw"]) != "hunter2" {
				t.Errorf("Decrypt()[pw] = %q; want %q", got["pw"], "hunter2")
			}
		})
	}
}

// tamper rewrites the first match of re in file with repl.
func tamper(t *testing.T, file string, re string, repl func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	loc := regexp.MustCompile(re).FindIndex(data)
	if loc == nil {
		t.Fatalf("%s: no match for %s in %s", file, re, data)
	}
	out := string(data[:loc[0]]) + repl(string(data[loc[0]:loc[1]])) + string(data[loc[1]:])
	dst := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(dst, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func flipLast(s string) string {
	b := []byte(s)
	if b[len(b)-1] == 'A' {
		b[len(b)-1] = 'B'
	} else {
		b[len(b)-1] = 'A'
	}
	return string(b)
}

func TestDecryptErrors(t *testing.T) {
	host, other := newAgeKey(t), newAgeKey(t)
	good := encryptSops(t, "yaml", plainYAML, host.recipient)
	otherMAC := regexp.MustCompile(`mac: ENC\[[^\]]*\]`).Find(encryptBytes(t, "yaml", plainYAML, host.recipient))
	tests := []struct {
		name   string
		secret Secret
		want   string // regexp the error for this secret must match
	}{
		{"other-host", Secret{SopsFile: encryptSops(t, "yaml", plainYAML, other.recipient)}, "not encrypted to this host.*" + other.recipient},
		{"swapped-mac", Secret{SopsFile: tamper(t, good, `mac: ENC\[[^\]]*\]`, func(string) string { return string(otherMAC) })}, "Cannot decrypt MAC|MAC mismatch"},
		{"tampered-unencrypted-value", Secret{SopsFile: tamper(t, good, `port_unencrypted: 5432`, func(string) string { return "port_unencrypted: 5433" })}, "MAC mismatch"},
		{"tampered-ciphertext", Secret{SopsFile: tamper(t, good, `password: ENC\[AES256_GCM,data:.`, flipLast)}, "Could not decrypt value.*message authentication failed"},
		{"missing-key", Secret{SopsFile: good, Key: "db/nope"}, `key "db/nope": at "db/nope": not found`},
		{"key-into-scalar", Secret{SopsFile: good, Key: "db/password/x"}, `at "db/password/x": not found: the value above is a scalar`},
		{"missing-file", Secret{SopsFile: filepath.Join(t.TempDir(), "gone.yaml")}, "no such file"},
		{"wrong-format", Secret{SopsFile: good, Format: "json"}, "loading .* as json"},
	}
	var secrets []Secret
	for _, tt := range tests {
		s := tt.secret
		s.Name = tt.name
		secrets = append(secrets, s)
	}
	secrets = append(secrets, Secret{Name: "fine", SopsFile: good, Key: "db/password"})
	d := &Decrypter{Helper: helperPath}
	got, err := d.Decrypt(context.Background(), loadIDs(t, []string{host.file}, nil), secrets)
	if got != nil || err == nil {
		t.Fatalf("Decrypt() = %v, %v; want no values and an error", got, err)
	}
	t.Logf("Decrypt() error:\n%v", err)
	byName := secretErrors(t, err)
	for _, tt := range tests {
		e, ok := byName[tt.name]
		if !ok {
			t.Errorf("Decrypt() error names no %q: %v", tt.name, err)
			continue
		}
		if !regexp.MustCompile(tt.want).MatchString(e.Error()) {
			t.Errorf("Decrypt() error for %q = %v; want match for %q", tt.name, e, tt.want)
		}
	}
	if _, ok := byName["fine"]; ok {
		t.Errorf("Decrypt() reported the good secret as failing: %v", byName["fine"])
	}
}

// secretErrors indexes the *SecretError values joined in err by name.
func secretErrors(t *testing.T, err error) map[string]*SecretError {
	t.Helper()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v is not a joined error", err)
	}
	out := map[string]*SecretError{}
	for _, e := range joined.Unwrap() {
		var se *SecretError
		if !errors.As(e, &se) {
			t.Fatalf("error %v is not a *SecretError", e)
		}
		out[se.Name] = se
	}
	return out
}

// TestEnvironmentKeysIgnored puts the right key everywhere sops would look
// on its own; decryption must still fail with only the wrong identity.
func TestEnvironmentKeysIgnored(t *testing.T) {
	right, wrong := newAgeKey(t), newAgeKey(t)
	sshRight := newSSHKey(t)
	file := encryptSops(t, "yaml", plainYAML, right.recipient, sshRight.native)
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".config", "sops", "age"), 0o700)
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	keyData, _ := os.ReadFile(right.file)
	sshData, _ := os.ReadFile(sshRight.file)
	os.WriteFile(filepath.Join(home, ".config", "sops", "age", "keys.txt"), keyData, 0o600)
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), sshData, 0o600)
	env := []string{
		"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"SOPS_AGE_KEY=" + strings.TrimSpace(string(keyData)), "SOPS_AGE_KEY_FILE=" + right.file,
		"SOPS_AGE_SSH_PRIVATE_KEY_FILE=" + sshRight.file,
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ids := loadIDs(t, []string{wrong.file}, nil)
	secrets := []Secret{{Name: "s", SopsFile: file}}
	_, err := (&Decrypter{Helper: helperPath}).Decrypt(context.Background(), ids, secrets)
	if err == nil || !strings.Contains(err.Error(), "not encrypted to this host") {
		t.Errorf("Decrypt() through Decrypter = %v; want not encrypted to this host", err)
	}
	// The helper run by hand with that environment must scrub it too.
	in := mustJSON(t, newRequest(ids, secrets))
	cmd := exec.Command(helperPath)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running helper: %v", err)
	}
	if !strings.Contains(string(out), "not encrypted to this host") {
		t.Errorf("helper with SOPS_AGE_* env = %s; want not encrypted to this host", out)
	}
}

func TestCheck(t *testing.T) {
	host := newSSHKey(t)
	good := encryptSops(t, "json", plainJSON, host.derivedAge)
	m := &Manifest{Version: 1, Secrets: []Secret{
		{Name: "token", SopsFile: good, Key: "api/token"},
		{Name: "missing", SopsFile: good, Key: "api/nope"},
	}}
	got := Check(context.Background(), &Decrypter{Helper: helperPath}, loadIDs(t, nil, []string{host.file}), m)
	if len(got) != 2 || got[0].Err != nil || got[0].Size != 3 || got[1].Err == nil {
		t.Errorf("Check() = %+v; want token ok with 3 bytes, missing failing", got)
	}
	bad := Check(context.Background(), &Decrypter{Helper: "/nonexistent/avalanche-decrypt"}, loadIDs(t, nil, []string{host.file}), m)
	for _, r := range bad {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "/nonexistent/avalanche-decrypt") {
			t.Errorf("Check() with a missing helper: %q err = %v; want the helper path", r.Name, r.Err)
		}
	}
}

func BenchmarkDecrypt100(b *testing.B) {
	key := newAgeKey(b)
	var yaml strings.Builder
	for i := 0; i < 100; i++ {
		yaml.WriteString("k" + string(rune('a'+i%26)) + strings.Repeat("x", i) + ": value\n")
	}
	file := encryptSops(b, "yaml", yaml.String(), key.recipient)
	var secrets []Secret
	for i := 0; i < 100; i++ {
		name := "k" + string(rune('a'+i%26)) + strings.Repeat("x", i)
		secrets = append(secrets, Secret{Name: name, SopsFile: file, Key: name})
	}
	ids := loadIDs(b, []string{key.file}, nil)
	d := &Decrypter{Helper: helperPath}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Decrypt(context.Background(), ids, secrets); err != nil {
			b.Fatal(err)
		}
	}
}
