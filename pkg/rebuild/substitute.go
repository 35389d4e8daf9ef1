package rebuild

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Substitution failure classes, besides ErrTransient and context errors.
// ErrNotInCache, ErrUntrustedPath and ErrSubstitute say what the cache
// serves is wrong for that path (missing, unsigned, broken): whether that
// is the path's fault or the cache's is for the caller to decide (a host
// in builder mode blames the cache and retries). A full disk wraps
// syscall.ENOSPC.
var (
	// ErrNotInCache means a path of the closure is missing from the cache.
	ErrNotInCache = errors.New("not in the binary cache")
	// ErrUntrustedPath means a path's narinfo carries no valid signature by
	// a trusted cache key: tampered, or signed by another key.
	ErrUntrustedPath = errors.New("not signed by a trusted cache key")
	// ErrSubstitute means Nix could not substitute a path that the cache
	// lists and signs: a missing or corrupt NAR.
	ErrSubstitute = errors.New("substitution error")
)

// Cache is the binary cache a host substitutes its systems from.
type Cache struct {
	// URL is a Nix store URL: http(s)://, s3://…?endpoint=…, ssh-ng://, file://.
	URL string
	// Keys are the only keys whose signatures are trusted.
	Keys []CacheKey
}

// SubstituteProgress counts the paths Substitute fetches and their size.
type SubstituteProgress struct {
	Paths, PathsDone int
	// Bytes counts compressed download sizes when the cache reports them
	// (binary caches), NAR sizes otherwise.
	Bytes, BytesDone int64
}

// Substitute makes outPath and its closure valid in the local store by
// substitution from c alone, signatures by c.Keys required; it never
// evaluates or builds. First it checks every path the host lacks: present
// in the cache (else ErrNotInCache) and signed by a trusted key (else
// ErrUntrustedPath), so a bad release changes nothing on the host. Then it
// realises outPath, registering gcRoot as Build does. progress, when not
// nil, gets the totals first and then each finished path.
func (n *Nix) Substitute(ctx context.Context, c Cache, outPath, gcRoot string, progress func(SubstituteProgress)) (string, error) {
	out, err := n.substitute(ctx, c, outPath, gcRoot, progress)
	if err != nil {
		return "", fmt.Errorf("substituting %s from %s: %w", filepath.Base(outPath), c.URL, err)
	}
	return out, nil
}

func (n *Nix) substitute(ctx context.Context, c Cache, outPath, gcRoot string, progress func(SubstituteProgress)) (string, error) {
	if len(c.Keys) == 0 {
		return "", errors.New("no trusted cache keys configured")
	}
	missing, err := n.plan(ctx, c, outPath)
	if err != nil {
		return "", err
	}
	p := newProgress(missing, progress)
	out, err := n.realise(ctx, c, outPath, gcRoot, p)
	if err == nil || ctxErr(err) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrTransient) {
		return out, err
	}
	// Nix refused what the check accepted: find out whether the cache
	// went away meanwhile (retry) or serves a broken path (refuse).
	if _, again := n.plan(ctx, c, outPath); again != nil {
		return "", again
	}
	return "", fmt.Errorf("%w: %w", ErrSubstitute, err)
}

// plan walks the closure of outPath from the top, asking the cache only
// about the paths the local store lacks (a valid path's closure is valid),
// and checks each one's signature. It returns the paths to fetch.
func (n *Nix) plan(ctx context.Context, c Cache, outPath string) ([]PathInfo, error) {
	var missing []PathInfo
	seen := map[string]bool{outPath: true}
	for frontier := []string{outPath}; len(frontier) > 0; {
		invalid, err := n.invalidPaths(ctx, frontier)
		if err != nil {
			// Never the release's fault: retry unless the disk is full.
			return nil, fmt.Errorf("checking the local store: %w", cmp.Or(hostError(err), fmt.Errorf("%w: %w", ErrTransient, err)))
		}
		if len(invalid) == 0 {
			break
		}
		infos, err := n.pathInfos(ctx, c.URL, invalid)
		if err != nil {
			return nil, fmt.Errorf("%w: asking %s: %w", ErrTransient, c.URL, err)
		}
		frontier = nil
		for _, p := range invalid {
			info, ok := infos[p]
			if !ok {
				return nil, fmt.Errorf("%w: %s", ErrNotInCache, p)
			}
			if _, err := info.signedBy(c.Keys); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrUntrustedPath, p, err)
			}
			missing = append(missing, info)
			for _, r := range info.References {
				if !seen[r] {
					seen[r] = true
					frontier = append(frontier, r)
				}
			}
		}
	}
	return missing, nil
}

// realise runs nix-store --realise on the output path: for a path that is
// not a derivation Nix can only substitute, never build.
func (n *Nix) realise(ctx context.Context, c Cache, outPath, gcRoot string, p *progressWriter) (string, error) {
	keys := make([]string, len(c.Keys))
	for i, k := range c.Keys {
		keys[i] = k.String()
	}
	args := []string{"--realise", outPath,
		"--option", "substitute", "true",
		"--option", "substituters", c.URL,
		"--option", "trusted-public-keys", strings.Join(keys, " "),
		"--option", "require-sigs", "true",
		// A path the check just found must not be taken for missing
		// because an earlier attempt cached its absence.
		"--option", "narinfo-cache-negative-ttl", "0"}
	args, gcRoot, err := withRoot(args, gcRoot)
	if err != nil {
		return "", err
	}
	cmd := n.nixCommand("nix-store", args...)
	cmd.stderr = p.tee(cmd.stderr)
	if err := cmd.run(ctx); err != nil {
		return "", cmp.Or(hostError(err), err)
	}
	p.done()
	if gcRoot == "" {
		return outPath, nil
	}
	target, err := os.Readlink(gcRoot)
	if err != nil {
		return "", fmt.Errorf("reading gc root: %w", err)
	}
	if target != outPath {
		return "", fmt.Errorf("%w: gc root points to %s, want %s", ErrSubstitute, target, outPath)
	}
	return target, nil
}

// hostError classifies a command failure that is not the release's fault:
// a cancelled context as is, a full disk wrapping syscall.ENOSPC, network
// or daemon trouble wrapping ErrTransient. It returns nil for other errors.
func hostError(err error) error {
	var ce *CommandError
	switch {
	case ctxErr(err):
		return err
	case errors.As(err, &ce) && strings.Contains(strings.ToLower(ce.Tail), "no space left on device"):
		return fmt.Errorf("%w: %w", syscall.ENOSPC, err)
	case IsTransient(err):
		return fmt.Errorf("%w: %w", ErrTransient, err)
	}
	return nil
}
