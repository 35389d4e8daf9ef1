package rebuild

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CacheKey is a binary cache's public signing key, written name:base64 as
// in nix.conf's trusted-public-keys and as nix-store
// --generate-binary-cache-key prints it.
type CacheKey struct {
	Name string
	Key  ed25519.PublicKey
}

// ParseCacheKey parses name:base64 of a 32-byte ed25519 public key.
func ParseCacheKey(s string) (CacheKey, error) {
	name, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || name == "" {
		return CacheKey{}, fmt.Errorf("cache key %q is not name:base64", s)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return CacheKey{}, fmt.Errorf("cache key %q: want the base64 of a %d-byte ed25519 public key", s, ed25519.PublicKeySize)
	}
	return CacheKey{Name: name, Key: key}, nil
}

// String returns the key as nix.conf writes it.
func (k CacheKey) String() string {
	return k.Name + ":" + base64.StdEncoding.EncodeToString(k.Key)
}

// PathInfo is what a store says about one of its paths (nix path-info --json).
type PathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    int64    `json:"narSize"`
	References []string `json:"references"`
	Signatures []string `json:"signatures"`
	// DownloadSize is the compressed size in a binary cache; 0 if unknown.
	DownloadSize int64 `json:"downloadSize"`
	// RegistrationTime is when the local store registered the path as
	// valid (Unix seconds, the machine's clock then); 0 for a cache.
	RegistrationTime int64 `json:"registrationTime"`
}

// fingerprint is what a narinfo signature covers, as Nix computes it:
// 1;<path>;sha256:<nix32 NAR hash>;<NAR size>;<references, comma-separated>.
func (p PathInfo) fingerprint() (string, error) {
	h, err := nix32Hash(p.NarHash)
	if err != nil {
		return "", err
	}
	refs := slices.Clone(p.References)
	slices.Sort(refs)
	return "1;" + p.Path + ";" + h + ";" + strconv.FormatInt(p.NarSize, 10) + ";" + strings.Join(refs, ","), nil
}

// signedBy returns the name of the first key in keys that made a valid
// signature of p, or an error saying why none did.
func (p PathInfo) signedBy(keys []CacheKey) (string, error) {
	fp, err := p.fingerprint()
	if err != nil {
		return "", err
	}
	var names []string
	for _, s := range p.Signatures {
		name, b64, _ := strings.Cut(s, ":")
		names = append(names, name)
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) != ed25519.SignatureSize {
			continue
		}
		for _, k := range keys {
			if k.Name == name && ed25519.Verify(k.Key, []byte(fp), sig) {
				return name, nil
			}
		}
	}
	if len(names) == 0 {
		return "", errors.New("it carries no signature")
	}
	return "", fmt.Errorf("no valid signature by a trusted key (signed by %s)", strings.Join(names, ", "))
}

// nix32Hash returns a sha256 hash given as SRI (sha256-<base64>), base16 or
// nix32 (sha256:<…>) in the sha256:<nix32> form fingerprints use.
func nix32Hash(s string) (string, error) {
	var raw []byte
	var err error
	switch {
	case strings.HasPrefix(s, "sha256-"):
		raw, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "sha256-"))
	case strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+64:
		raw, err = hex.DecodeString(strings.TrimPrefix(s, "sha256:"))
	case strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+52:
		return s, nil
	default:
		return "", fmt.Errorf("unsupported NAR hash %q", s)
	}
	if err != nil || len(raw) != 32 {
		return "", fmt.Errorf("malformed NAR hash %q", s)
	}
	return "sha256:" + nix32(raw), nil
}

// nix32Alphabet is Nix's base-32 alphabet (no e, o, u, t).
const nix32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz"

// nix32 encodes b the way Nix prints hashes in base 32: least significant
// 5-bit group last.
func nix32(b []byte) string {
	n := (len(b)*8-1)/5 + 1
	out := make([]byte, 0, n)
	for i := n - 1; i >= 0; i-- {
		bit := i * 5
		j, k := bit/8, uint(bit%8)
		c := b[j] >> k
		if j+1 < len(b) {
			c |= b[j+1] << (8 - k)
		}
		out = append(out, nix32Alphabet[c&0x1f])
	}
	return string(out)
}
