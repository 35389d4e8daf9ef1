package secrets

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseManifest feeds arbitrary bytes to ParseManifest. An accepted
// manifest must validate, keep every secret inside the secrets directory,
// have a usable mode and format, and survive a JSON round trip unchanged.
func FuzzParseManifest(f *testing.F) {
	for _, seed := range []string{
		`{"version":1,"secrets":[{"name":"db/password","sopsFile":"/nix/store/x-db.yaml","key":"db/password","mode":"0440","owner":"root","group":"0","restartUnits":["db.service"]}]}`,
		`{"version":1,"secrets":[{"name":"a","sopsFile":"/s.bin","format":"binary"},{"name":"a/b","sopsFile":"/s.json"}]}`,
		`{"version":1,"secrets":[{"name":"../etc/shadow","sopsFile":"/x"}]}`,
		`{"version":1,"secrets":[{"name":"x","sopsFile":"/x","mode":"4755"}]}`,
		`{"version":2,"secrets":[]} {}`,
		`{"version":1,"secrets":null,"extra":1}`,
	} {
		f.Add([]byte(seed))
	}
	root := "/run/secrets"
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("ParseManifest(%q) accepted a manifest Validate rejects: %v", data, err)
		}
		for _, s := range m.Secrets {
			p := filepath.Join(root, s.Name)
			if !strings.HasPrefix(p, root+"/") {
				t.Errorf("secret %q lands at %s, outside %s", s.Name, p, root)
			}
			mode, err := s.FileMode()
			if err != nil || mode&^0o777 != 0 {
				t.Errorf("secret %q: FileMode() = %v, %v; want permission bits only", s.Name, mode, err)
			}
			if !slices.Contains(Formats, s.EffectiveFormat()) {
				t.Errorf("secret %q: EffectiveFormat() = %q; want one of %v", s.Name, s.EffectiveFormat(), Formats)
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal(%+v) = %v", m, err)
		}
		again, err := ParseManifest(b)
		if err != nil {
			t.Fatalf("ParseManifest(Marshal(m)) = %v; want the accepted manifest accepted again", err)
		}
		if diff := cmp.Diff(m, again); diff != "" {
			t.Errorf("manifest changed in a JSON round trip (-first +second):\n%s", diff)
		}
	})
}
