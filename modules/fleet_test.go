package modules

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// libEnv names nixpkgs' lib/ directory when it is not in a shared/ folder
// beside the repository (or beside one of its parents).
const libEnv = "AVALANCHE_NIXPKGS_LIB"

// nixpkgsLib returns nixpkgs' lib/ directory for lib.evalModules. The
// project does not vendor it: it comes from $AVALANCHE_NIXPKGS_LIB, else
// from shared/nixpkgs-lib/lib next to the repository or next to one of its
// parent directories (where CI and the worktrees have it). Without it the
// test fails: the host evaluation is not optional.
func nixpkgsLib(t *testing.T) string {
	t.Helper()
	var tried []string
	if dir := os.Getenv(libEnv); dir != "" {
		if isLib(dir) {
			return dir
		}
		t.Fatalf("%s=%s is not nixpkgs' lib directory (no default.nix and modules.nix)", libEnv, dir)
	}
	for dir := filepath.Dir(repoRoot); ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "shared", "nixpkgs-lib", "lib")
		tried = append(tried, cand)
		if isLib(cand) {
			return cand
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	// A networked machine without the shared copy fetches the same commit.
	dir, err := fetchLib()
	if err == nil && isLib(dir) {
		return dir
	}
	t.Fatalf("nixpkgs' lib/ not found (tried %s, and fetching nix-community/nixpkgs.lib %s: %v): set %s to a nixpkgs "+
		"checkout's lib/ (e.g. a clone of github.com/nix-community/nixpkgs.lib), the module system the hosts are evaluated with",
		strings.Join(tried, ", "), nixpkgsLibRev, err, libEnv)
	return ""
}

// nixpkgsLibRev is the nix-community/nixpkgs.lib commit of the shared copy.
const nixpkgsLibRev = "de42d44212d207476489bce163375d8306a26d59"

// fetchLib fetches nixpkgs' lib at nixpkgsLibRev into the Nix store.
func fetchLib() (string, error) {
	expr := fmt.Sprintf(`builtins.fetchTarball "https://github.com/nix-community/nixpkgs.lib/archive/%s.tar.gz"`, nixpkgsLibRev)
	out, err := exec.Command("nix-instantiate", "--eval", "--json", "-E", expr).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	var dir string
	if err := json.Unmarshal(out, &dir); err != nil {
		return "", err
	}
	return filepath.Join(dir, "lib"), nil
}

func isLib(dir string) bool {
	for _, f := range []string{"default.nix", "modules.nix", "types.nix"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// fleet is a scratch copy of the repository's Nix side that the test may
// change, evaluated with nixos/tests/eval.
type fleet struct {
	dir string // the copy's root
	lib string // nixpkgs' lib/
}

// fleetDirs are what flake.nix and the hosts read.
var fleetDirs = []string{"flake.nix", "nixos", "modules/avalanche-agent", "cloud/nixos", "secrets"}

// newFleet copies the repository's Nix side into a temporary directory.
func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{dir: t.TempDir(), lib: nixpkgsLib(t)}
	for _, rel := range fleetDirs {
		if err := copyTree(filepath.Join(repoRoot, rel), filepath.Join(f.dir, rel)); err != nil {
			t.Fatalf("copying %s: %v", rel, err)
		}
	}
	return f
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// expr is a Nix expression over the harness of the copy.
func (f *fleet) expr(attr string) string {
	return fmt.Sprintf("(import (%s + \"/nixos/tests/eval\") { nixpkgsLib = %s; repo = %s; }).%s",
		nixPath(f.dir), nixPath(f.lib), nixPath(f.dir), attr)
}

// nixPath is dir as a Nix path expression, whatever characters it holds
// (t.TempDir names carry the test's name).
func nixPath(dir string) string {
	s := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`).Replace(dir)
	return `(/. + "` + s + `")`
}

// eval evaluates attr strictly; the error carries Nix's message.
func (f *fleet) eval(attr string, v any) error {
	out, err := run([]string{"nix-instantiate", "--eval", "--strict", "--json", "--readonly-mode", "-E", f.expr(attr)})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("decoding %s: %w\n%s", attr, err, out)
	}
	return nil
}

func (f *fleet) mustEval(t *testing.T, attr string, v any) {
	t.Helper()
	if err := f.eval(attr, v); err != nil {
		t.Fatal(err)
	}
}

// edit replaces old with new in the copy's file rel; old must be there.
func (f *fleet) edit(t *testing.T, rel, old, new string) {
	t.Helper()
	file := filepath.Join(f.dir, rel)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s no longer contains %q: update the test", rel, old)
	}
	writeFile(t, file, strings.Replace(string(data), old, new, 1))
}

// planned is one value a host reads from a secrets file.
type planned struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Key    string `json:"key"`
	Format string `json:"format"`
}

// testValue is what the generated secrets file holds for key.
func testValue(file, key string) string {
	return "test value of " + key + " in " + filepath.Base(filepath.Dir(file))
}

// writeSecrets creates every secrets file the hosts declare, encrypted with
// SOPS to a new age key, each holding a test value at every key a host
// reads; it returns the key file and the plan.
func (f *fleet) writeSecrets(t *testing.T, hosts []string) (string, map[string][]planned) {
	t.Helper()
	key := secretstest.NewAgeKey(t)
	plans := map[string][]planned{}
	docs := map[string]map[string]any{}
	for _, h := range hosts {
		var plan []planned
		f.mustEval(t, fmt.Sprintf("secretsPlan %q", h), &plan)
		plans[h] = plan
		for _, p := range plan {
			if p.Format != "yaml" {
				t.Fatalf("%s: secret %s has format %s; the test only generates yaml files", h, p.Name, p.Format)
			}
			if !strings.HasPrefix(p.File, f.dir+"/secrets/") {
				t.Fatalf("%s: secret %s reads %s, outside secrets/ of the repository", h, p.Name, p.File)
			}
			if docs[p.File] == nil {
				docs[p.File] = map[string]any{}
			}
			if err := setPath(docs[p.File], strings.Split(p.Key, "/"), testValue(p.File, p.Key)); err != nil {
				t.Fatalf("%s: %s in %s: %v", h, p.Key, p.File, err)
			}
		}
	}
	for file, doc := range docs {
		plain, err := json.Marshal(doc) // YAML is a superset of JSON
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, file, string(secretstest.Encrypt(t, "yaml", string(plain), key.Recipient)))
	}
	return key.File, plans
}

// setPath sets doc[a][b]… = value for the path a/b/….
func setPath(doc map[string]any, path []string, value string) error {
	if len(path) == 1 {
		if _, ok := doc[path[0]]; ok {
			if existing, ok := doc[path[0]].(string); !ok || existing != value {
				return errors.New("the key is both a value and a mapping")
			}
		}
		doc[path[0]] = value
		return nil
	}
	next, ok := doc[path[0]].(map[string]any)
	if !ok {
		if _, taken := doc[path[0]]; taken {
			return errors.New("the key is both a value and a mapping")
		}
		next = map[string]any{}
		doc[path[0]] = next
	}
	return setPath(next, path[1:], value)
}

// inventoryHosts is the host names of nixos/lib/inventory.nix.
func inventoryHosts(t *testing.T) map[string]host {
	t.Helper()
	var inv map[string]host
	if err := json.Unmarshal(nixEval(t, "import "+filepath.Join(repoRoot, "nixos", "lib", "inventory.nix")), &inv); err != nil {
		t.Fatal(err)
	}
	return inv
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
