package check

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/upstream"
)

// RootFile is the root Application, applied by hand at bootstrap, relative
// to the repository root.
const RootFile = "kubernetes/clusters/main/root.yaml"

// App is one ArgoCD Application and what it applies.
type App struct {
	*Application
	// Object is the Application object itself.
	Object Object
	// Wave is its sync wave within its parent.
	Wave int
	// Parent is the app-of-apps that applies it (nil for the root).
	Parent *App
	// Objects is everything it applies: kustomize builds and Helm renders.
	Objects []Object
}

// Tree is what ArgoCD would apply from this repository, app by app, as
// found by following the root Application.
type Tree struct {
	// RepoRoot is the monorepo's root directory.
	RepoRoot string
	// Repo is the root Application's repoURL: "this repository".
	Repo string
	// Apps lists every Application, the root first.
	Apps []*App
	// Unrendered lists subcharts that could not be rendered, with why.
	Unrendered []string
	// Scopes maps group/kind to whether it is namespaced, from the built-in
	// list and every CRD the tree applies.
	Scopes map[string]bool
}

// Load follows the root Application of repoRoot and renders every
// Application it reaches. The errors are problems that stop an Application
// from rendering at all; the other checks run on what did render.
func Load(repoRoot string) (*Tree, []error) {
	t := &Tree{RepoRoot: repoRoot}
	rootObjs, err := readObjects(filepath.Join(repoRoot, RootFile))
	if err != nil {
		return t, []error{err}
	}
	if len(rootObjs) != 1 || rootObjs[0].Kind != "Application" {
		return t, []error{fmt.Errorf("%s: want exactly one Application", RootFile)}
	}
	root := &App{Application: new(Application), Object: rootObjs[0]}
	if err := unmarshal(root.Object, root.Application); err != nil {
		return t, []error{err}
	}
	if src := root.AllSources(); len(src) == 1 {
		t.Repo = src[0].RepoURL
	}
	var pins ChartPins
	if err := upstream.ReadJSON(filepath.Join(repoRoot, "kubernetes/check/upstream/charts.json"), &pins); err != nil {
		return t, []error{err}
	}
	var errs []error
	queue := []*App{root}
	seen := map[string]bool{}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		if seen[a.Metadata.Name] {
			continue
		}
		seen[a.Metadata.Name] = true
		t.Apps = append(t.Apps, a)
		errs = append(errs, t.render(a, pins)...)
		children, cerrs := childApps(a)
		errs = append(errs, cerrs...)
		queue = append(queue, children...)
	}
	t.Scopes = scopes(t.AllObjects())
	t.defaultNamespaces()
	return t, errs
}

func childApps(parent *App) ([]*App, []error) {
	var out []*App
	var errs []error
	for _, o := range parent.Objects {
		if o.Kind != "Application" || !strings.HasPrefix(o.APIVersion, "argoproj.io/") || o.Name == parent.Metadata.Name {
			continue
		}
		a := &App{Application: new(Application), Object: o, Parent: parent}
		if err := unmarshal(o, a.Application); err != nil {
			errs = append(errs, err)
			continue
		}
		w, err := a.Application.Wave()
		if err != nil {
			errs = append(errs, err)
		}
		a.Wave = w
		out = append(out, a)
	}
	return out, errs
}

// render fills a.Objects from its sources.
func (t *Tree) render(a *App, pins ChartPins) []error {
	var errs []error
	refs := map[string]string{}
	for _, s := range a.AllSources() {
		if s.Ref != "" && sameRepo(s.RepoURL, t.Repo) {
			refs[s.Ref] = s.RepoURL
		}
	}
	for _, s := range a.AllSources() {
		var objs []Object
		var err error
		switch {
		case s.Chart != "":
			objs, err = t.renderHelm(a, s, pins, refs)
		case s.Path != "" && sameRepo(s.RepoURL, t.Repo):
			objs, err = t.buildPath(s.Path)
		case s.Path != "":
			err = fmt.Errorf("source %s: another repository; the checker cannot render it", s.RepoURL)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("Application %s: %w", a.Metadata.Name, err))
		}
		a.Objects = append(a.Objects, objs...)
	}
	return errs
}

func (t *Tree) buildPath(rel string) ([]Object, error) {
	if filepath.IsAbs(rel) || strings.HasPrefix(filepath.Clean(rel), "..") {
		return nil, fmt.Errorf("path %s: must be relative to the repository root", rel)
	}
	dir := filepath.Join(t.RepoRoot, rel)
	if _, ok, err := readKustomization(dir); err != nil || !ok {
		if err == nil {
			err = errors.New("no kustomization.yaml (the checker renders kustomize directories only)")
		}
		return nil, fmt.Errorf("path %s: %w", rel, err)
	}
	return Build(dir)
}

func (t *Tree) renderHelm(a *App, s AppSource, pins ChartPins, refs map[string]string) ([]Object, error) {
	var pin *ChartPin
	for i, p := range pins.Charts {
		if sameRepo(p.RepoURL, s.RepoURL) && p.Chart == s.Chart && p.Version == s.TargetRevision {
			pin = &pins.Charts[i]
		}
	}
	if pin == nil {
		return nil, fmt.Errorf("chart %s %s from %s is not vendored (kubernetes/check/upstream/charts.json)", s.Chart, s.TargetRevision, s.RepoURL)
	}
	var values [][]byte
	release := a.Metadata.Name
	if s.Helm != nil {
		if s.Helm.ReleaseName != "" {
			release = s.Helm.ReleaseName
		}
		for _, vf := range s.Helm.ValueFiles {
			b, err := t.valueFile(vf, refs)
			if err != nil {
				return nil, err
			}
			values = append(values, b)
		}
	}
	r, err := RenderChart(filepath.Join(t.RepoRoot, "kubernetes/check/upstream"), *pin, release, a.Spec.Destination.Namespace, values)
	for _, u := range r.Unrendered {
		t.Unrendered = append(t.Unrendered, fmt.Sprintf("Application %s: subchart %s", a.Metadata.Name, u))
	}
	return r.Objects, err
}

func (t *Tree) valueFile(vf string, refs map[string]string) ([]byte, error) {
	ref, rel, ok := strings.Cut(strings.TrimPrefix(vf, "$"), "/")
	if !strings.HasPrefix(vf, "$") || !ok {
		return nil, fmt.Errorf("value file %s: only $ref/... files of this repository are supported", vf)
	}
	if _, ok := refs[ref]; !ok {
		return nil, fmt.Errorf("value file %s: no source of this repository has ref %q", vf, ref)
	}
	b, err := os.ReadFile(filepath.Join(t.RepoRoot, rel))
	if err != nil {
		return nil, fmt.Errorf("value file %s: %w", vf, err)
	}
	return b, nil
}

// AllObjects returns every object of every Application, the root's own
// Application object included.
func (t *Tree) AllObjects() []Object {
	var out []Object
	for _, a := range t.Apps {
		if a.Parent == nil {
			out = append(out, a.Object)
		}
		out = append(out, a.Objects...)
	}
	return out
}

// defaultNamespaces gives namespaced objects without a namespace their
// Application's destination namespace, as ArgoCD does.
func (t *Tree) defaultNamespaces() {
	for _, a := range t.Apps {
		for i, o := range a.Objects {
			if o.Namespace == "" && t.Namespaced(o) {
				a.Objects[i].Namespace = a.Spec.Destination.Namespace
			}
		}
	}
}

func readObjects(path string) ([]Object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseRendered("", map[string]string{path: string(b)})
}
