package nixtest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Cache is a real Nix binary cache in a directory (file://), signed with a
// key made by nix-store --generate-binary-cache-key.
type Cache struct {
	Dir string
	// URL is file://<Dir>, what a builder copies to.
	URL string
	// SecretKeyFile is the signing key; PublicKey is name:base64.
	SecretKeyFile, PublicKey string
}

// NewCache creates an empty binary cache directory and a fresh key pair
// named name.
func NewCache(t testing.TB, name string) *Cache {
	t.Helper()
	dir := t.TempDir()
	c := &Cache{Dir: filepath.Join(dir, "cache"), SecretKeyFile: filepath.Join(dir, "secret-key")}
	c.URL = "file://" + c.Dir
	pub := filepath.Join(dir, "public-key")
	run(t, "nix-store", "--generate-binary-cache-key", name, c.SecretKeyFile, pub)
	b, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	c.PublicKey = strings.TrimSpace(string(b))
	return c
}

// Serve serves the cache over HTTP, as a static binary cache, until the
// test ends or the returned server is closed; its URL is what hosts use.
func (c *Cache) Serve(t testing.TB) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.FileServer(http.Dir(c.Dir)))
	t.Cleanup(s.Close)
	return s
}

// NarinfoFile returns the file holding the narinfo of storePath.
func (c *Cache) NarinfoFile(storePath string) string {
	hash, _, _ := strings.Cut(filepath.Base(storePath), "-")
	return filepath.Join(c.Dir, hash+".narinfo")
}

// Closure returns storePath and every path it references, recursively.
func Closure(t testing.TB, storePath string) []string {
	t.Helper()
	return strings.Fields(run(t, "nix-store", "--query", "--requisites", storePath))
}

// DeleteFromStore deletes paths from the local Nix store, so that a test
// host truly lacks them; it fails the test when one is still alive (a GC
// root or a live referrer holds it).
func DeleteFromStore(t testing.TB, paths ...string) {
	t.Helper()
	run(t, "nix-store", append([]string{"--delete"}, paths...)...)
	for _, p := range paths {
		if err := exec.Command("nix-store", "--check-validity", p).Run(); err == nil {
			t.Fatalf("%s is still valid after nix-store --delete", p)
		}
	}
}

// run runs a nix program and returns its stdout; stderr goes in the failure.
func run(t testing.TB, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prog, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, tail(stderr.String()))
	}
	return string(out)
}

// tail returns the last lines of s (nix-store --delete lists every stale root).
func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}
