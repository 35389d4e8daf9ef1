package secretstest

import (
	"context"
	"os"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveHelper()
	os.Exit(code)
}

// TestEncryptDecryptsWithTheHelper round-trips every format through the
// helper Helper builds, with the key file NewAgeKey writes.
func TestEncryptDecryptsWithTheHelper(t *testing.T) {
	key, other := NewAgeKey(t), NewAgeKey(t)
	tests := []struct {
		format, plain, key, want string
		to                       AgeKey
		wantErr                  bool
	}{
		{"yaml", "db:\n    password: hunter2\n", "db/password", "hunter2", key, false},
		{"json", `{"api": {"token": "t0k"}}`, "api/token", "t0k", key, false},
		{"binary", "\x00\xff binary\n", "", "\x00\xff binary\n", key, false},
		{"dotenv", "A=1\n", "A", "1", key, false},
		{"ini", "[s]\nk = v\n", "s/k", "v", key, false},
		{"yaml", "a: b\n", "a", "", other, true},
	}
	var list []secrets.Secret
	for i, tt := range tests {
		list = append(list, secrets.Secret{Name: string(rune('a' + i)), SopsFile: EncryptFile(t, tt.format, tt.plain, tt.to.Recipient), Key: tt.key})
	}
	ids, err := secrets.LoadIdentities([]string{key.File}, nil)
	if err != nil {
		t.Fatalf("LoadIdentities(%q) = %v", key.File, err)
	}
	d := &secrets.Decrypter{Helper: Helper(t)}
	res := secrets.Check(context.Background(), d, ids, &secrets.Manifest{Version: 1, Secrets: list})
	got, err := d.Decrypt(context.Background(), ids, list[:len(list)-1])
	if err != nil {
		t.Fatalf("Decrypt() = %v", err)
	}
	for i, tt := range tests {
		if tt.wantErr {
			if res[i].Err == nil {
				t.Errorf("Check()[%d] (%s to another key) = ok; want an error", i, tt.format)
			}
			continue
		}
		if v := string(got[list[i].Name]); v != tt.want || res[i].Err != nil {
			t.Errorf("decrypting %s key %q = %q (check: %v); want %q", tt.format, tt.key, v, res[i].Err, tt.want)
		}
	}
}
