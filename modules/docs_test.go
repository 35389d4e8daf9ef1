package modules

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// secretRow is a row of the secrets table in docs/migration/README.md:
// | host | `file` | `key`, `key` |
var secretRow = regexp.MustCompile("^\\| ([a-z0-9-]+) \\| `(secrets/[^`]+)` \\| (.+) \\|$")

// The migration guide tells a new owner which secrets each host needs; it
// must say exactly what the hosts declare.
func TestMigrationDocListsEverySecret(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "docs", "migration", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := secretRow.FindStringSubmatch(line); m != nil {
			documented[m[1]] = m[2] + ": " + strings.NewReplacer("`", "").Replace(m[3])
		}
	}

	f := newFleet(t)
	declared := map[string]string{}
	for h := range inventoryHosts(t) {
		var plan []planned
		f.mustEval(t, fmt.Sprintf("secretsPlan %q", h), &plan)
		byFile := map[string][]string{}
		for _, p := range plan {
			rel := strings.TrimPrefix(p.File, f.dir+"/")
			if !slices.Contains(byFile[rel], p.Key) {
				byFile[rel] = append(byFile[rel], p.Key)
			}
		}
		for file, keys := range byFile {
			sort.Strings(keys)
			declared[h] = file + ": " + strings.Join(keys, ", ")
		}
	}
	if diff := cmp.Diff(declared, documented); diff != "" {
		t.Errorf("secrets the hosts declare vs docs/migration/README.md (-declared +documented):\n%s", diff)
	}
}
