package rebuild

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Outputs lists the nixosConfigurations of flakeRef, sorted. Listing the
// names forces no configuration.
func (n *Nix) Outputs(ctx context.Context, flakeRef string) ([]string, error) {
	var stdout bytes.Buffer
	c := n.nixCommand("nix", "eval", "--json", flakeRef+"#nixosConfigurations", "--apply", "builtins.attrNames")
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return nil, fmt.Errorf("listing nixosConfigurations: %w", classify(ErrEval, err))
	}
	var names []string
	if err := json.Unmarshal(stdout.Bytes(), &names); err != nil {
		return nil, fmt.Errorf("listing nixosConfigurations: %w: decoding %q: %w", ErrEval, stdout.String(), err)
	}
	slices.Sort(names)
	return names, nil
}

// HostEvaluation is an Evaluation with the Nix system it builds for.
type HostEvaluation struct {
	Evaluation
	System string // e.g. aarch64-linux
}

// hostApply picks both paths and the derivation's system in one evaluation.
const hostApply = "t: { drv = t.drvPath; out = t.outPath; system = t.system; }"

// EvaluateHost is Evaluate for a builder: it also returns the system the
// toplevel derivation builds for, which hosts check against their own.
func (n *Nix) EvaluateHost(ctx context.Context, flakeRef, output string) (HostEvaluation, error) {
	var stdout bytes.Buffer
	c := n.nixCommand("nix", "eval", "--json", flakeRef+"#"+ToplevelAttr(output), "--apply", hostApply)
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return HostEvaluation{}, fmt.Errorf("evaluating %s: %w", output, classify(ErrEval, err))
	}
	var v struct{ Drv, Out, System string }
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || !strings.HasSuffix(v.Drv, ".drv") ||
		!strings.HasPrefix(v.Out, "/") || v.System == "" {
		return HostEvaluation{}, fmt.Errorf("evaluating %s: %w: not a derivation: %s", output, ErrEval, stdout.String())
	}
	return HostEvaluation{Evaluation: Evaluation{DrvPath: v.Drv, OutPath: v.Out}, System: v.System}, nil
}

// Sign adds a signature by the secret key in keyFile (nix-store
// --generate-binary-cache-key) to path and every path of its closure in the
// local store, so they carry it into any cache they are copied to.
func (n *Nix) Sign(ctx context.Context, keyFile, path string) error {
	c := n.nixCommand("nix", "store", "sign", "--key-file", keyFile, "--recursive", path)
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("signing %s: %w", filepath.Base(path), cmp.Or(hostError(err), err))
	}
	return nil
}

// Copy copies path and its closure to the store at storeURL (a binary
// cache: file://, s3://…, http://…; or a Nix daemon over ssh-ng://).
// Paths the destination has are skipped.
func (n *Nix) Copy(ctx context.Context, storeURL, path string) error {
	c := n.nixCommand("nix", "copy", "--to", storeURL, path)
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("copying %s to %s: %w", filepath.Base(path), storeURL, cmp.Or(hostError(err), err))
	}
	return nil
}

// MissingFrom returns the paths of path's closure that the store at
// storeURL does not hold (none: the cache can serve the whole closure).
// path must be valid in the local store; when it is not, MissingFrom
// returns path itself, so a caller builds and copies it again. Its errors
// are never a path's fault: the cache unreachable wraps ErrTransient.
func (n *Nix) MissingFrom(ctx context.Context, storeURL, path string) ([]string, error) {
	invalid, err := n.invalidPaths(ctx, []string{path})
	if err != nil {
		return nil, fmt.Errorf("checking the local store: %w", cmp.Or(hostError(err), fmt.Errorf("%w: %w", ErrTransient, err)))
	}
	if len(invalid) > 0 {
		return []string{path}, nil
	}
	var stdout bytes.Buffer
	c := n.nixCommand("nix-store", "--query", "--requisites", path)
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return nil, fmt.Errorf("listing the closure of %s: %w", filepath.Base(path), cmp.Or(hostError(err), fmt.Errorf("%w: %w", ErrTransient, err)))
	}
	closure := strings.Fields(stdout.String())
	infos, err := n.pathInfos(ctx, storeURL, closure)
	if err != nil {
		return nil, fmt.Errorf("%w: asking %s: %w", ErrTransient, storeURL, err)
	}
	var missing []string
	for _, p := range closure {
		if _, ok := infos[p]; !ok {
			missing = append(missing, p)
		}
	}
	return missing, nil
}
