package rebuild

import (
	"crypto/rand"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
)

// TestNix32MatchesNix converts random SHA-256 hashes from SRI to Nix's
// base 32 and compares with nix hash to-base32.
func TestNix32MatchesNix(t *testing.T) {
	if _, err := exec.LookPath("nix"); err != nil {
		t.Fatalf("this test needs nix: %v", err) // no silent skip
	}
	for range 5 {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		sri := "sha256-" + base64.StdEncoding.EncodeToString(raw)
		out, err := exec.Command("nix", "--extra-experimental-features", "nix-command", "hash", "to-base32", sri).Output()
		if err != nil {
			t.Fatalf("nix hash to-base32 %s: %v", sri, err)
		}
		got, err := nix32Hash(sri)
		if want := "sha256:" + strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("nix32Hash(%s) = %q, %v; want %q", sri, got, err, want)
		}
	}
}
