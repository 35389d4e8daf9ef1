package s3url

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
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
		got, err := Parse(tt.raw)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) = %+v, %v; want an error containing %q", tt.raw, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q) = %v", tt.raw, err)
		} else if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.raw, diff)
		}
	}
}

func TestNarinfoKey(t *testing.T) {
	if got := NarinfoKey("/nix/store/0nmdvwy0idrs4gmykg3kc9yx0jfjrcn-kernel"); got != "0nmdvwy0idrs4gmykg3kc9yx0jfjrcn.narinfo" {
		t.Errorf("NarinfoKey = %q", got)
	}
}
