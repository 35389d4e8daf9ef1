package rebuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// FlakeRef returns the flake reference of one commit of a local git
// repository, e.g.
// git+file:///var/lib/avalanche-agent/.repo.git.eval?ref=main&rev=<sha>.
// The reference names exactly commit's tree forever. Nix reads a directory
// with a .git (gitsync.Repo.EvalDir) in place and clones a bare repository
// into its cache first.
func FlakeRef(bareRepoDir, branch, commit string) string {
	dir, err := filepath.Abs(bareRepoDir)
	if err != nil {
		dir = filepath.Clean(bareRepoDir)
	}
	u := url.URL{Scheme: "git+file", Path: dir}
	var query []string
	if branch != "" {
		// Nix decodes %2F, but testing/eagle reads better than testing%2Feagle.
		query = append(query, "ref="+strings.ReplaceAll(url.QueryEscape(branch), "%2F", "/"))
	}
	if commit != "" {
		query = append(query, "rev="+url.QueryEscape(commit))
	}
	u.RawQuery = strings.Join(query, "&")
	return u.String()
}

// NixosRebuildCommand returns the command a person would run for the same
// deployment, e.g. nixos-rebuild switch --flake 'git+file:///…?ref=main&rev=…#eagle'.
func NixosRebuildCommand(action, flakeRef, output string) string {
	return shellJoin([]string{"nixos-rebuild", action, "--flake", flakeRef + "#" + output})
}

// ToplevelAttr returns the flake attribute of a host's system:
// nixosConfigurations.<output>.config.system.build.toplevel.
func ToplevelAttr(output string) string {
	return "nixosConfigurations." + attrName(output) + ".config.system.build.toplevel"
}

var plainAttr = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*$`)

// attrName quotes an attribute name when Nix would not read it bare (e.g. dots).
func attrName(s string) string {
	if plainAttr.MatchString(s) {
		return s
	}
	b, _ := json.Marshal(s) // a JSON string is a valid Nix string here
	return strings.ReplaceAll(string(b), "${", `\${`)
}

// Evaluation is an evaluated but not necessarily built system.
type Evaluation struct {
	DrvPath string // the toplevel derivation, written to the store by evaluation
	OutPath string // where the system will be once built
}

// evalApply picks both paths in one evaluation. The keys must not be
// outPath: toJSON turns an attribute set with outPath into that string.
const evalApply = "t: { drv = t.drvPath; out = t.outPath; }"

// Evaluate evaluates nixosConfigurations.<output>.config.system.build.toplevel
// of flakeRef without building it (import-from-derivation aside).
func (n *Nix) Evaluate(ctx context.Context, flakeRef, output string) (Evaluation, error) {
	installable := flakeRef + "#" + ToplevelAttr(output)
	var stdout bytes.Buffer
	c := n.nixCommand("nix", "eval", "--json", installable, "--apply", evalApply)
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return Evaluation{}, fmt.Errorf("evaluating %s: %w", output, classify(ErrEval, err))
	}
	var paths struct{ Drv, Out string }
	if err := json.Unmarshal(stdout.Bytes(), &paths); err != nil {
		return Evaluation{}, fmt.Errorf("evaluating %s: %w: decoding %q: %w", output, ErrEval, stdout.String(), err)
	}
	if !strings.HasSuffix(paths.Drv, ".drv") || !strings.HasPrefix(paths.Out, "/") {
		return Evaluation{}, fmt.Errorf("evaluating %s: %w: not a derivation: %s", output, ErrEval, stdout.String())
	}
	return Evaluation{DrvPath: paths.Drv, OutPath: paths.Out}, nil
}
