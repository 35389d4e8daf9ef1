// Package secrets installs SOPS-encrypted secrets on a host: it reads the
// manifest the NixOS module renders into the built system, decrypts each
// secret through the short-lived avalanche-decrypt helper (so the resident
// daemon never links sops and its cloud KMS SDKs), and writes the results
// into generation directories on a RAM-backed filesystem behind an
// atomically swapped symlink.
//
// This package must not import github.com/getsops/sops; a test enforces it.
package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
)

// ManifestVersion is the only manifest version this package understands.
const ManifestVersion = 1

// ErrNoManifest reports that a system declares no secrets manifest.
var ErrNoManifest = errors.New("no secrets manifest")

// Formats lists the sops file formats a secret may declare.
var Formats = []string{"yaml", "json", "dotenv", "ini", "binary"}

// Manifest is the list of secrets a NixOS system declares, rendered by the
// NixOS module at <toplevel>/etc/avalanche-agent/secrets.json.
type Manifest struct {
	Version int      `json:"version"`
	Secrets []Secret `json:"secrets"`
}

// Secret is one file to install at <secrets dir>/<Name>.
type Secret struct {
	// Name is the path below the secrets directory; it may contain "/" to
	// place the secret in a subdirectory, but never leaves the directory.
	Name string `json:"name"`
	// SopsFile is the encrypted file, usually a /nix/store path.
	SopsFile string `json:"sopsFile"`
	// Key selects a value inside the file, sops-nix style: "db/password".
	// Empty means the whole decrypted file, as `sops decrypt` prints it.
	Key string `json:"key"`
	// Format is yaml, json, dotenv, ini or binary; empty means: from the
	// file name's extension, as sops decides it.
	Format string `json:"format"`
	// Owner and Group are names or numeric ids; empty means root, or the
	// owner's primary group for Group.
	Owner string `json:"owner"`
	Group string `json:"group"`
	// Mode is an octal permission string such as "0400" (the default).
	Mode         string   `json:"mode"`
	RestartUnits []string `json:"restartUnits"`
	ReloadUnits  []string `json:"reloadUnits"`
}

// LoadManifest reads and validates the manifest at path. It returns an error
// wrapping ErrNoManifest when the file does not exist.
func LoadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loading %s: %w", path, ErrNoManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("loading secrets manifest: %w", err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return m, nil
}

// ParseManifest strictly decodes and validates a manifest.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding manifest: trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate reports every problem in the manifest at once.
func (m *Manifest) Validate() error {
	var errs []error
	if m.Version != ManifestVersion {
		errs = append(errs, fmt.Errorf("version %d is not supported (want %d)", m.Version, ManifestVersion))
	}
	seen := make(map[string]bool)
	for i, s := range m.Secrets {
		if err := s.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("secret %d (%q): %w", i, s.Name, err))
			continue
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("secret %d: duplicate name %q", i, s.Name))
		}
		seen[s.Name] = true
	}
	errs = append(errs, nameConflicts(seen)...)
	return errors.Join(errs...)
}

// nameConflicts finds names used both as a file and as a directory,
// e.g. "a" and "a/b".
func nameConflicts(names map[string]bool) []error {
	var errs []error
	for name := range names {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if names[dir] {
				errs = append(errs, fmt.Errorf("secret %q is inside secret %q", name, dir))
			}
		}
	}
	return errs
}

// Validate reports every problem in one secret declaration.
func (s *Secret) Validate() error {
	var errs []error
	if err := validateName(s.Name); err != nil {
		errs = append(errs, err)
	}
	if !path.IsAbs(s.SopsFile) {
		errs = append(errs, fmt.Errorf("sopsFile %q is not an absolute path", s.SopsFile))
	}
	if s.Format != "" && !isFormat(s.Format) {
		errs = append(errs, fmt.Errorf("format %q is not one of %s", s.Format, strings.Join(Formats, ", ")))
	}
	if err := validateKey(s.Key); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.FileMode(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateName accepts relative, clean, slash-separated paths that stay
// inside the secrets directory.
func validateName(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("name %q is absolute", name)
	case !fs.ValidPath(name) || name == "." || strings.Contains(name, "\\"):
		return fmt.Errorf("name %q escapes the secrets directory or is not a clean path", name)
	case strings.ContainsAny(name, "\x00\n"):
		return fmt.Errorf("name %q contains a NUL or newline", name)
	}
	return nil
}

func validateKey(key string) error {
	if key == "" {
		return nil
	}
	for _, c := range strings.Split(key, "/") {
		if c == "" {
			return fmt.Errorf("key %q has an empty component", key)
		}
	}
	return nil
}

func isFormat(f string) bool {
	for _, g := range Formats {
		if f == g {
			return true
		}
	}
	return false
}

// EffectiveFormat returns the declared format or, when empty, the one sops
// derives from the file name (.yaml/.yml, .json, .env, .ini, else binary).
func (s *Secret) EffectiveFormat() string {
	if s.Format != "" {
		return s.Format
	}
	switch {
	case strings.HasSuffix(s.SopsFile, ".yaml"), strings.HasSuffix(s.SopsFile, ".yml"):
		return "yaml"
	case strings.HasSuffix(s.SopsFile, ".json"):
		return "json"
	case strings.HasSuffix(s.SopsFile, ".env"):
		return "dotenv"
	case strings.HasSuffix(s.SopsFile, ".ini"):
		return "ini"
	}
	return "binary"
}

// FileMode parses Mode; the empty string means 0400. Only permission bits
// are allowed: no setuid, setgid or sticky bits on a secret.
func (s *Secret) FileMode() (fs.FileMode, error) {
	if s.Mode == "" {
		return 0o400, nil
	}
	v, err := strconv.ParseUint(s.Mode, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("mode %q is not an octal permission between 0000 and 0777", s.Mode)
	}
	return fs.FileMode(v), nil
}
