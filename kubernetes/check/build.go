// Package check validates the Kubernetes GitOps tree under kubernetes/: every
// kustomization builds offline, every object decodes strictly, no Secret
// carries plaintext, ArgoCD Applications point at paths that exist, and
// marmithon's egress is locked to the Tailscale exit node.
//
// It is its own Go module so that the Kubernetes libraries never enter the
// agent's go.mod or binary.
package check

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one Kubernetes object, built by kustomize or read from a file.
type Object struct {
	// Origin is the kustomization directory or file the object came from.
	Origin     string
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	// JSON is the whole object as JSON.
	JSON []byte
}

// String names the object for error messages.
func (o Object) String() string {
	id := o.Name
	if o.Namespace != "" {
		id = o.Namespace + "/" + o.Name
	}
	return fmt.Sprintf("%s %s %s (from %s)", o.APIVersion, o.Kind, id, o.Origin)
}

// Kustomization is a directory holding a kustomization file.
type Kustomization struct {
	Dir string
	// Component is true for `kind: Component`, which kustomize builds only as
	// part of another kustomization.
	Component bool
	// Components are the component directories it uses, cleaned paths.
	Components []string
}

// FindKustomizations returns every kustomization under root, sorted by
// directory. Directories named testdata and hidden directories are skipped.
func FindKustomizations(root string) ([]Kustomization, error) {
	var out []Kustomization
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && (d.Name() == "testdata" || d.Name()[0] == '.') {
			return filepath.SkipDir
		}
		k, ok, err := readKustomization(path)
		if err != nil {
			return err
		}
		if ok {
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finding kustomizations under %s: %w", root, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out, nil
}

func readKustomization(dir string) (Kustomization, bool, error) {
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Kustomization{}, false, fmt.Errorf("reading kustomization: %w", err)
		}
		var head struct {
			Kind       string   `json:"kind"`
			Components []string `json:"components"`
		}
		if err := yaml.Unmarshal(b, &head); err != nil {
			return Kustomization{}, false, fmt.Errorf("parsing %s: %w", filepath.Join(dir, name), err)
		}
		k := Kustomization{Dir: dir, Component: head.Kind == "Component"}
		for _, c := range head.Components {
			k.Components = append(k.Components, filepath.Join(dir, c))
		}
		return k, true, nil
	}
	return Kustomization{}, false, nil
}

var (
	buildMu   sync.Mutex
	buildMemo = map[[sha256.Size]byte][]Object{}
)

// Build runs kustomize (the Go API, no helm, no network plugins) on dir and
// returns the objects it produced. Builds are memoized by the content of dir
// and of the shared components (../../components, the only paths outside
// their own directory that this tree's kustomizations read), which keeps the
// mutation tests fast.
func Build(dir string) ([]Object, error) {
	key, err := treeHash(dir, filepath.Join(dir, "../../components"))
	if err == nil {
		buildMu.Lock()
		objs, ok := buildMemo[key]
		buildMu.Unlock()
		if ok {
			return withOrigin(objs, dir), nil
		}
	}
	objs, berr := build(dir)
	if berr == nil && err == nil {
		buildMu.Lock()
		buildMemo[key] = objs
		buildMu.Unlock()
	}
	return objs, berr
}

func withOrigin(objs []Object, dir string) []Object {
	out := make([]Object, len(objs))
	for i, o := range objs {
		o.Origin = dir
		out[i] = o
	}
	return out
}

// treeHash hashes the names and contents of every file under the dirs.
func treeHash(dirs ...string) ([sha256.Size]byte, error) {
	h := sha256.New()
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == d {
				return nil
			}
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(d, p)
			fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return [sha256.Size]byte{}, err
		}
	}
	var key [sha256.Size]byte
	copy(key[:], h.Sum(nil))
	return key, nil
}

func build(dir string) ([]Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out := make([]Object, 0, m.Size())
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: encoding %s: %w", dir, r.CurId(), err)
		}
		out = append(out, Object{
			Origin:     dir,
			APIVersion: r.GetApiVersion(),
			Kind:       r.GetKind(),
			Namespace:  r.GetNamespace(),
			Name:       r.GetName(),
			JSON:       b,
		})
	}
	return out, nil
}

// UnusedComponents returns the components that no non-component
// kustomization uses, directly or through another component: those would
// never be built, so nothing would check them.
func UnusedComponents(ks []Kustomization) []string {
	byDir := make(map[string]Kustomization, len(ks))
	for _, k := range ks {
		byDir[filepath.Clean(k.Dir)] = k
	}
	used := make(map[string]bool)
	var visit func(dir string)
	visit = func(dir string) {
		if used[dir] {
			return
		}
		used[dir] = true
		for _, c := range byDir[dir].Components {
			visit(filepath.Clean(c))
		}
	}
	for _, k := range ks {
		if !k.Component {
			for _, c := range k.Components {
				visit(filepath.Clean(c))
			}
		}
	}
	var unused []string
	for _, k := range ks {
		if k.Component && !used[filepath.Clean(k.Dir)] {
			unused = append(unused, k.Dir)
		}
	}
	return unused
}
