package rebuild

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// argBatch bounds how many store paths one command gets, far below the
// kernel's argument size limit.
const argBatch = 500

// pathInfos asks the store at storeURL about paths, without substituting
// or building anything. A path the store does not hold is absent from the
// result.
func (n *Nix) pathInfos(ctx context.Context, storeURL string, paths []string) (map[string]PathInfo, error) {
	out := make(map[string]PathInfo, len(paths))
	for batch := range slices.Chunk(paths, argBatch) {
		// Substituters off: nix path-info tries to realise a missing path
		// in the queried store otherwise. No narinfo disk cache: its
		// answers (a miss for an hour, a hit for a month) would outlive a
		// cache mended or emptied since.
		args := append([]string{"path-info", "--json", "--store", storeURL, "--option", "substituters", "",
			"--option", "narinfo-cache-negative-ttl", "0", "--option", "narinfo-cache-positive-ttl", "0"}, batch...)
		var stdout bytes.Buffer
		c := n.nixCommand("nix", args...)
		c.stdout = &stdout
		if err := c.run(ctx); err != nil {
			return nil, err
		}
		if err := decodePathInfos(stdout.Bytes(), out); err != nil {
			return nil, fmt.Errorf("decoding nix path-info output: %w", err)
		}
	}
	return out, nil
}

// decodePathInfos reads nix path-info --json output into out: a list with
// "valid": false for missing paths (Nix 2.8 up to 2.18), or an object
// keyed by path with null for missing paths (later Nix).
func decodePathInfos(b []byte, out map[string]PathInfo) error {
	b = bytes.TrimSpace(b)
	if bytes.HasPrefix(b, []byte("{")) {
		var m map[string]*PathInfo
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		for path, info := range m {
			if info != nil {
				info.Path = path
				out[path] = *info
			}
		}
		return nil
	}
	var list []struct {
		PathInfo
		Valid *bool `json:"valid"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	for _, e := range list {
		if e.Valid == nil || *e.Valid {
			out[e.Path] = e.PathInfo
		}
	}
	return nil
}

// invalidPaths returns the paths that are not valid in the local store.
func (n *Nix) invalidPaths(ctx context.Context, paths []string) ([]string, error) {
	var invalid []string
	for batch := range slices.Chunk(paths, argBatch) {
		var stdout bytes.Buffer
		c := n.nixCommand("nix-store", append([]string{"--check-validity", "--print-invalid"}, batch...)...)
		c.stdout = &stdout
		if err := c.run(ctx); err != nil {
			return nil, err
		}
		invalid = append(invalid, strings.Fields(stdout.String())...)
	}
	return invalid, nil
}

// Valid reports whether path is valid in the local store. Its errors are
// the machine's (a full disk) or wrap ErrTransient, never the path's.
func (n *Nix) Valid(ctx context.Context, path string) (bool, error) {
	invalid, err := n.invalidPaths(ctx, []string{path})
	if err != nil {
		return false, fmt.Errorf("checking the local store: %w", cmp.Or(hostError(err), fmt.Errorf("%w: %w", ErrTransient, err)))
	}
	return len(invalid) == 0, nil
}
