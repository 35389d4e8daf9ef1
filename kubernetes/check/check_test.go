package check

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	treeRoot = ".."    // kubernetes/
	repoRoot = "../.." // the monorepo
)

// built is the whole tree, built once for every test.
type built struct {
	ks    []Kustomization
	byDir map[string][]Object
	errs  map[string]error
	err   error
}

var (
	treeOnce sync.Once
	tree     built
)

func loadTree(t *testing.T) *built {
	t.Helper()
	treeOnce.Do(func() {
		tree.ks, tree.err = FindKustomizations(treeRoot)
		tree.byDir = make(map[string][]Object)
		tree.errs = make(map[string]error)
		for _, k := range tree.ks {
			if k.Component {
				continue
			}
			objs, err := Build(k.Dir)
			tree.byDir[k.Dir], tree.errs[k.Dir] = objs, err
		}
	})
	if tree.err != nil {
		t.Fatalf("FindKustomizations(%q) = %v", treeRoot, tree.err)
	}
	return &tree
}

func (b *built) all() []Object {
	var out []Object
	for _, k := range b.ks {
		out = append(out, b.byDir[k.Dir]...)
	}
	return out
}

func (b *built) dir(t *testing.T, rel string) []Object {
	t.Helper()
	objs, ok := b.byDir[filepath.Join(treeRoot, rel)]
	if !ok || len(objs) == 0 {
		t.Fatalf("kustomization %s: not built or empty", rel)
	}
	return objs
}

func TestEveryKustomizationBuilds(t *testing.T) {
	b := loadTree(t)
	if len(b.byDir) < 10 {
		t.Fatalf("found %d kustomizations under %s; want the whole tree (>= 10)", len(b.byDir), treeRoot)
	}
	for _, k := range b.ks {
		if err := b.errs[k.Dir]; err != nil {
			t.Errorf("Build(%q) = %v", k.Dir, err)
		}
	}
	if unused := UnusedComponents(b.ks); len(unused) > 0 {
		t.Errorf("UnusedComponents() = %v; want none (a component nobody uses is never built)", unused)
	}
}

// TestTree runs every check on the repository as it is: it must pass, and
// it says which site values are still unset and what it could not render.
func TestTree(t *testing.T) {
	r := Check(context.Background(), repoRoot, t.TempDir())
	for _, err := range r.Errors {
		t.Error(err)
	}
	if r.Apps < 11 || r.Objects < 300 {
		t.Errorf("Check() saw %d Applications and %d objects; want the whole tree (>= 11, >= 300)", r.Apps, r.Objects)
	}
	for _, u := range r.Unrendered {
		t.Logf("not rendered: %s", u)
	}
	for _, u := range r.Unset {
		t.Logf("unset site value (fill in before a first sync): %s", u)
	}
}

// TestEveryDirectoryDeployed checks that every app and infra directory is
// the path of some Application.
func TestEveryDirectoryDeployed(t *testing.T) {
	b := loadTree(t)
	tr, errs := Load(repoRoot)
	for _, err := range errs {
		t.Fatalf("Load(%q): %v", repoRoot, err)
	}
	paths := make(map[string]bool)
	for _, a := range tr.Apps {
		for _, s := range a.AllSources() {
			if sameRepo(s.RepoURL, tr.Repo) && s.Path != "" {
				paths[filepath.Clean(s.Path)] = true
			}
		}
	}
	for _, k := range b.ks {
		rel, _ := filepath.Rel(repoRoot, k.Dir)
		if parent := filepath.Dir(rel); (parent == "kubernetes/base/apps" || parent == "kubernetes/base/infra") && !paths[rel] {
			t.Errorf("%s: no Application deploys it", rel)
		}
	}
}

// The fixtures below must fail: they show each check can.

func buildFixture(t *testing.T, name string) []Object {
	t.Helper()
	objs, err := Build(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Build(testdata/%s) = %v", name, err)
	}
	return objs
}

func wantErrors(t *testing.T, what string, errs []error, want ...string) {
	t.Helper()
	joined := errors.Join(errs...)
	for _, w := range want {
		if joined == nil || !strings.Contains(joined.Error(), w) {
			t.Errorf("%s = %v; want an error containing %q", what, joined, w)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("%s returned %d errors; want %d:\n%v", what, len(errs), len(want), joined)
	}
}

func TestBuildFailsOnBrokenKustomization(t *testing.T) {
	if _, err := Build("testdata/broken"); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Build(testdata/broken) = %v; want an error naming missing.yaml", err)
	}
}

func TestPlaintextSecretsFound(t *testing.T) {
	// In a build even a SOPS-encrypted Secret is wrong: ArgoCD would apply
	// the ciphertext. The raw scan lets it pass (it is not plaintext).
	wantErrors(t, "PlaintextSecrets(testdata/plaintext)", PlaintextSecrets(buildFixture(t, "plaintext")),
		"Secret demo/leaked", "Secret demo/sops-encrypted", "Secret demo/generated")
	findings, err := ScanFiles("testdata/plaintext")
	if err != nil {
		t.Fatalf("ScanFiles(testdata/plaintext) = %v", err)
	}
	wantErrors(t, "ScanFiles(testdata/plaintext)", findings,
		"secretGenerator", "Secret in-a-list has plaintext data", "Secret leaked has plaintext stringData")
}

func TestExitNodeEgressRejectsLeakyBot(t *testing.T) {
	wantErrors(t, "ExitNodeEgress(testdata/leaky)", ExitNodeEgress(buildFixture(t, "leaky"), "bot"),
		"not a native sidecar",
		"no startupProbe",
		"has no --exit-node=",
		`TS_USERSPACE="true"`,
		`TS_ACCEPT_DNS=""`,
		`dnsPolicy "": want "None"`,
		"must drop ALL capabilities",
		"no non-root runAsUser",
		"no livenessProbe on the sidecar's /healthz",
		"TS_AUTHKEY must come from a Secret",
		"no Role bound to ServiceAccount default",
		"Secret bot/bot-state (tailscale state) is not declared in git",
		"egress rule 0: allows TCP 6667 (IRC) to 0.0.0.0/0",
		"egress rule 1: allows every port to ::/0",
		"egress rule 2: allows TCP 6667 (IRC) to any destination",
	)
}

func TestExitNodeEgressNeedsAPolicy(t *testing.T) {
	var objs []Object
	for _, o := range loadTree(t).dir(t, "base/apps/marmithon") {
		if o.Kind != "NetworkPolicy" || o.Name == "default-deny-ingress" {
			objs = append(objs, o)
		}
	}
	wantErrors(t, "ExitNodeEgress(marmithon without its egress policy)", ExitNodeEgress(objs, "marmithon"),
		"no NetworkPolicy with policyTypes Egress")
}

func TestPrivateCIDR(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		want bool
	}{
		{"10.0.0.0/8", true},
		{"10.43.0.10/32", true},
		{"192.168.1.0/24", true},
		{"fd7a:115c:a1e0::/48", true},
		{"0.0.0.0/0", false},
		{"8.0.0.0/7", false},
		{"::/0", false},
		{"172.0.0.0/8", false},
		{"not-a-cidr", false},
	} {
		if got := privateCIDR(tc.cidr); got != tc.want {
			t.Errorf("privateCIDR(%q) = %v; want %v", tc.cidr, got, tc.want)
		}
	}
}

func ExampleObject_String() {
	fmt.Println(Object{APIVersion: "v1", Kind: "Secret", Namespace: "a", Name: "b", Origin: "dir"})
	// Output: v1 Secret a/b (from dir)
}
