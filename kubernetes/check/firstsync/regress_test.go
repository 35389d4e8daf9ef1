package firstsync

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestFirstSyncRegressions puts back, one at a time, defects of issue 24
// that the first sync must catch, and checks that ArgoCD's controller then
// fails the sync for the reason the issue gives: TestFirstSync can fail.
// Each case stops at the first failure, a few waves in.
func TestFirstSyncRegressions(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, work string)
		want string                 // the failure expected
		is   func(*syncFailed) bool // whether a failure is that one
	}{{
		// K1: project infra lists only named namespaces; ArgoCD matches
		// the empty destination namespace against them and refuses the
		// Application, and the root's wave -5 waits for it forever.
		name: "K1 security without destination namespace",
		edit: func(t *testing.T, work string) {
			editYAML(t, filepath.Join(work, "kubernetes/clusters/main/infra/security.yaml"), func(o map[string]any) {
				delete(o["spec"].(map[string]any)["destination"].(map[string]any), "namespace")
			})
		},
		want: "InvalidSpecError on Application security (namespace '')",
		is: func(f *syncFailed) bool {
			return f.app == "security" && strings.Contains(f.reason, "InvalidSpecError") && strings.Contains(f.reason, "namespace ''")
		},
	}, {
		// K5: without the tree's health rules, ArgoCD's built-in checks
		// call a not-yet-ready issuer, store or ExternalSecret Degraded,
		// which fails the sync of its Application, or the root's wave
		// when the root sees the child Degraded first (and, after the
		// retries, ArgoCD stops auto-syncing the commit).
		name: "K5 first-sync states Degraded",
		edit: func(t *testing.T, work string) {
			editYAML(t, filepath.Join(work, "kubernetes/base/infra/argocd/argocd-cm.yaml"), func(o map[string]any) {
				data := o["data"].(map[string]any)
				for _, k := range []string{"external-secrets.io_ClusterSecretStore", "external-secrets.io_ExternalSecret",
					"cert-manager.io_ClusterIssuer", "cert-manager.io_Issuer"} {
					if _, ok := data["resource.customizations.health."+k]; !ok {
						t.Fatalf("argocd-cm has no health rule for %s any more: update this case", k)
					}
					delete(data, "resource.customizations.health."+k)
				}
			})
		},
		want: "a failed sync: a task of an issuer, store or ExternalSecret failed, or a child Application went Degraded",
		is: func(f *syncFailed) bool {
			for _, task := range f.tasks {
				switch task.kind {
				case "ClusterIssuer", "Issuer", "ClusterSecretStore", "ExternalSecret":
					return true
				case "Application":
					if strings.Contains(f.health, "-> Degraded\" application="+task.name+" ") {
						return true
					}
				}
			}
			return false
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := firstSync(t, tc.edit, 15*time.Minute)
			var failed *syncFailed
			if !errors.As(err, &failed) {
				t.Fatalf("first sync with the regression: %v; want %s", err, tc.want)
			}
			if !tc.is(failed) {
				t.Fatalf("first sync with the regression failed as %v\nwant %s", err, tc.want)
			}
			t.Logf("failed as expected after %s: Application %s: %s\n%s", failed.after, failed.app, failed.reason, failed.health)
		})
	}
}

// editYAML rewrites the one-document YAML file path through edit (its
// comments are lost).
func editYAML(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var o map[string]any
	if err := yaml.Unmarshal(b, &o); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	edit(o)
	if b, err = yaml.Marshal(o); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
