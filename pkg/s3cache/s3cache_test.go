package s3cache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3url"
)

// TestOpenReadsTheCredentialsNow: a missing file or a profile without keys
// fails at start-up, naming the file, not at the first upload.
func TestOpenReadsTheCredentialsNow(t *testing.T) {
	dir := t.TempDir()
	noKeys := filepath.Join(dir, "nokeys")
	if err := os.WriteFile(noKeys, []byte("[default]\nregion = garage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loc := s3url.Location{Bucket: "c", Endpoint: "127.0.0.1:1", Region: "garage", Profile: "default"}
	for _, f := range []string{filepath.Join(dir, "absent"), noKeys} {
		if _, err := Open(loc, f); err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Open(%s) = %v; want an error naming the file", f, err)
		}
	}
}
