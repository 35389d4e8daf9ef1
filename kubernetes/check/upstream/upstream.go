// Package upstream describes what kubernetes/check vendors from upstream
// projects (Helm charts, CRDs, ArgoCD's install manifest) and checks that
// the vendored files are exactly what the pinned module versions hold.
//
// sources.json says what to take (a module path and version as served by
// the Go module proxy, and which of its paths to copy where); lock.json,
// written by `go run ./cmd/upstream`, records the module's go.sum hash and
// the SHA-256 of every file copied.
package upstream

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// Copy is one path of a module copied into the tree.
type Copy struct {
	// From is a file or directory inside the module.
	From string `json:"from"`
	// To is where it goes, relative to kubernetes/.
	To string `json:"to"`
	// Skip lists paths under From (relative to it) that are not needed:
	// tests, documentation, CI values.
	Skip []string `json:"skip,omitempty"`
}

// Source is one upstream module at one version, or, when Commit is set, a
// git repository at one commit (for what the module proxy cannot serve,
// such as a v2+ tag of a module without a /v2 path): Module is then the
// repository, Version the tag that names the commit.
type Source struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Copy    []Copy `json:"copy"`
}

// GitSum is the Sum lock.json records for a git source.
func GitSum(commit string) string { return "git:" + commit }

// Sources is sources.json.
type Sources struct {
	Comment string   `json:"comment"`
	Sources []Source `json:"sources"`
}

// Locked is one module in lock.json.
type Locked struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	// Sum is the module's hash as go.sum records it (h1:...), or for a
	// git source GitSum of its commit.
	Sum string `json:"sum"`
	// Files maps each copied file (relative to kubernetes/) to its SHA-256.
	Files map[string]string `json:"files"`
}

// Lock is lock.json.
type Lock struct {
	Modules []Locked `json:"modules"`
}

// ReadJSON strictly decodes the JSON file at path into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("parsing %s: %w", path, err)
	}
	return nil
}

// FileSum returns the hex SHA-256 of the file at path.
func FileSum(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// Verify checks the vendored files under tree (kubernetes/) against lock:
// every locked file is there with its hash, no file was added under a
// vendored directory, and every source of src is locked at its version.
func Verify(tree string, src Sources, lock Lock) []error {
	var errs []error
	locked := make(map[string]string)
	for _, m := range lock.Modules {
		for f, sum := range m.Files {
			locked[f] = sum
		}
	}
	for _, s := range src.Sources {
		i := slices.IndexFunc(lock.Modules, func(m Locked) bool { return m.Module == s.Module })
		if i < 0 || lock.Modules[i].Version != s.Version {
			errs = append(errs, fmt.Errorf("%s@%s: not in lock.json; run `go run ./cmd/upstream`", s.Module, s.Version))
			continue
		}
		if s.Commit != "" && lock.Modules[i].Sum != GitSum(s.Commit) {
			errs = append(errs, fmt.Errorf("%s@%s: lock.json has %s, sources.json commit %s; run `go run ./cmd/upstream`", s.Module, s.Version, lock.Modules[i].Sum, s.Commit))
			continue
		}
		for _, c := range s.Copy {
			errs = append(errs, extraFiles(tree, c.To, locked)...)
		}
	}
	for _, f := range sortedKeys(locked) {
		got, err := FileSum(filepath.Join(tree, f))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("vendored file %s: %w", f, err))
		case got != locked[f]:
			errs = append(errs, fmt.Errorf("vendored file %s: sha256 %s, lock.json says %s: it differs from upstream", f, got, locked[f]))
		}
	}
	return errs
}

// extraFiles reports files under the vendored path to that lock.json does
// not list: something added by hand.
func extraFiles(tree, to string, locked map[string]string) []error {
	var errs []error
	err := filepath.WalkDir(filepath.Join(tree, to), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(tree, p)
		if err != nil {
			return err
		}
		if _, ok := locked[filepath.ToSlash(rel)]; !ok {
			errs = append(errs, fmt.Errorf("vendored file %s: not in lock.json (added by hand?)", rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("walking %s: %w", to, err))
	}
	return errs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
