package check

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RootApplication is the name of the app-of-apps root; its repoURL defines
// "this repository".
const RootApplication = "root"

// Applications returns every ArgoCD Application in objs, decoded.
func Applications(objs []Object) ([]*Application, []Object, error) {
	var apps []*Application
	var from []Object
	for _, o := range objs {
		if o.Kind != "Application" || !strings.HasPrefix(o.APIVersion, "argoproj.io/") {
			continue
		}
		v, err := Decode(o)
		if err != nil {
			return nil, nil, err
		}
		apps = append(apps, v.(*Application))
		from = append(from, o)
	}
	return apps, from, nil
}

// RepoURL returns the repoURL of the root Application.
func RepoURL(apps []*Application) (string, error) {
	for _, a := range apps {
		if a.Metadata.Name == RootApplication && len(a.AllSources()) == 1 {
			return a.AllSources()[0].RepoURL, nil
		}
	}
	return "", fmt.Errorf("no Application %q with one source", RootApplication)
}

func sameRepo(a, b string) bool {
	norm := func(s string) string { return strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git") }
	return norm(a) == norm(b)
}

// ApplicationPaths checks every Application source that reads this
// repository (repoURL equal to repo): its path must be a directory of
// repoRoot, and each $ref/... value file must name a file there.
func ApplicationPaths(repoRoot, repo string, apps []*Application) []error {
	var errs []error
	for _, a := range apps {
		refs := make(map[string]bool)
		for _, s := range a.AllSources() {
			if !sameRepo(s.RepoURL, repo) {
				continue
			}
			if s.Ref != "" {
				refs[s.Ref] = true
			}
			if s.Path != "" {
				if err := isDir(repoRoot, s.Path); err != nil {
					errs = append(errs, fmt.Errorf("Application %s: source path: %w", a.Metadata.Name, err))
				}
			}
		}
		errs = append(errs, valueFiles(repoRoot, a, refs)...)
	}
	return errs
}

func valueFiles(repoRoot string, a *Application, refs map[string]bool) []error {
	var errs []error
	for _, s := range a.AllSources() {
		if s.Helm == nil {
			continue
		}
		for _, vf := range s.Helm.ValueFiles {
			ref, rel, ok := strings.Cut(strings.TrimPrefix(vf, "$"), "/")
			if !strings.HasPrefix(vf, "$") || !ok {
				continue
			}
			if !refs[ref] {
				errs = append(errs, fmt.Errorf("Application %s: value file %s: no source of this repository has ref %q", a.Metadata.Name, vf, ref))
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil {
				errs = append(errs, fmt.Errorf("Application %s: value file %s: %w", a.Metadata.Name, vf, err))
			}
		}
	}
	return errs
}

func isDir(root, rel string) error {
	if filepath.IsAbs(rel) || strings.HasPrefix(filepath.Clean(rel), "..") {
		return fmt.Errorf("%s: must be relative to the repository root", rel)
	}
	fi, err := os.Stat(filepath.Join(root, rel))
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %w", rel, errors.New("not a directory"))
	}
	return nil
}
