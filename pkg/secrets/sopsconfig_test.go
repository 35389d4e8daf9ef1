package secrets

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"filippo.io/age"
	"github.com/getsops/sops/v3/config"
	"github.com/google/go-cmp/cmp"
)

// repoRoot is where .sops.yaml lives, relative to this package.
const repoRoot = "../.."

var placeholder = regexp.MustCompile(`age1…([a-z0-9-]+)-placeholder`)

// TestSopsConfig loads the repository's .sops.yaml with sops itself: with
// placeholders it must refuse to encrypt; with real keys in their place
// every host folder must be encrypted to that host and the admin only.
func TestSopsConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.LoadCreationRuleForFile(filepath.Join(repoRoot, ".sops.yaml"), "secrets/nixos/eagle/x.yaml", nil)
	if err == nil || !regexp.MustCompile(`age1…eagle-placeholder|age1…admin-placeholder`).MatchString(err.Error()) {
		t.Errorf("sops with the placeholder recipients = %v; want it to refuse them", err)
	}
	keys := map[string]string{}
	real := placeholder.ReplaceAllStringFunc(string(raw), func(m string) string {
		id, _ := age.GenerateX25519Identity()
		keys[placeholder.FindStringSubmatch(m)[1]] = id.Recipient().String()
		return id.Recipient().String()
	})
	dir := t.TempDir()
	conf := filepath.Join(dir, ".sops.yaml")
	if err := os.WriteFile(conf, []byte(real), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string][]string{
		"secrets/cloud/hcloud.yaml":              {keys["exit-node"], keys["admin"]},
		"secrets/kubernetes/apps/marmithon.yaml": {keys["cluster"], keys["admin"]},
	}
	for _, host := range fleetHosts(t) {
		tests["secrets/nixos/"+host+"/secrets.yaml"] = []string{keys[host], keys["admin"]}
	}
	for file, want := range tests {
		c, err := config.LoadCreationRuleForFile(conf, filepath.Join(dir, file), nil)
		if err != nil {
			t.Errorf("creation rule for %s: %v", file, err)
			continue
		}
		var got []string
		for _, k := range c.KeyGroups[0] {
			got = append(got, k.ToString())
		}
		sort.Strings(got)
		sort.Strings(want)
		if diff := cmp.Diff(want, got); diff != "" || len(c.KeyGroups) != 1 {
			t.Errorf("recipients of %s mismatch (-want +got):\n%s", file, diff)
		}
	}
	if _, err := config.LoadCreationRuleForFile(conf, filepath.Join(dir, "secrets/stray.yaml"), nil); err == nil {
		t.Error("a file outside the secrets folders matches a creation rule; want none")
	}
}

// fleetHosts lists nixos/hosts; every host needs its own rule.
func fleetHosts(t *testing.T) []string {
	t.Helper()
	hosts := []string{"calypso", "mysecrets", "eagle", "possum", "raccoon00", "raccoon01", "raccoon02",
		"raccoon03", "raccoon04", "raccoon05", "opi01", "opi02", "opi03", "beacon", "routy", "cardinal"}
	entries, _ := os.ReadDir(filepath.Join(repoRoot, "nixos", "hosts"))
	for _, e := range entries {
		if e.IsDir() && !contains(hosts, e.Name()) {
			hosts = append(hosts, e.Name())
		}
	}
	return hosts
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
