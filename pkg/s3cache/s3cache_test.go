package s3cache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw  string
		want Location
		err  string
	}{
		{"s3://nix-cache?endpoint=possum.internal:3900&region=garage",
			Location{Bucket: "nix-cache", Endpoint: "possum.internal:3900", Region: "garage", Profile: "default"}, ""},
		{"s3://c?endpoint=127.0.0.1:9000&scheme=http&profile=fleet",
			Location{Bucket: "c", Endpoint: "127.0.0.1:9000", Region: "us-east-1", Profile: "fleet", Insecure: true}, ""},
		{"s3://c", Location{}, "needs endpoint=HOST[:PORT]"},
		{"s3://c?endpoint=https://possum:3900", Location{}, "needs endpoint=HOST[:PORT] (no scheme"},
		{"s3://c?endpoint=possum:3900&scheme=ftp", Location{}, "scheme must be https or http"},
		{"https://possum:3900/c", Location{}, "is not s3://BUCKET"},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.raw)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseURL(%q) = %+v, %v; want an error containing %q", tt.raw, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q) = %v", tt.raw, err)
		} else if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseURL(%q) (-want +got):\n%s", tt.raw, diff)
		}
	}
}

// TestOpenReadsTheCredentialsNow: a missing file or a profile without keys
// fails at start-up, naming the file, not at the first upload.
func TestOpenReadsTheCredentialsNow(t *testing.T) {
	dir := t.TempDir()
	noKeys := filepath.Join(dir, "nokeys")
	if err := os.WriteFile(noKeys, []byte("[default]\nregion = garage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loc := Location{Bucket: "c", Endpoint: "127.0.0.1:1", Region: "garage", Profile: "default"}
	for _, f := range []string{filepath.Join(dir, "absent"), noKeys} {
		if _, err := Open(loc, f); err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Open(%s) = %v; want an error naming the file", f, err)
		}
	}
}

func TestNarinfoKey(t *testing.T) {
	if got := NarinfoKey("/nix/store/0nmdvwy0idrs4gmykg3kc9yx0jfjrcn-kernel"); got != "0nmdvwy0idrs4gmykg3kc9yx0jfjrcn.narinfo" {
		t.Errorf("NarinfoKey = %q", got)
	}
}
