package check

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/kio"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// PlaintextSecrets reports every object of kind Secret built from this
// repository that carries data or stringData: runtime credentials come from
// ExternalSecrets, never from git. Secrets a chart renders from its own
// templates (Alertmanager's configuration, say) are the chart's business;
// a credential in values.yaml would still be plaintext in git, which the
// review of values files, not this check, must catch.
func PlaintextSecrets(objs []Object) []error {
	var errs []error
	for _, o := range objs {
		if o.Kind != "Secret" || o.APIVersion != "v1" || strings.HasPrefix(o.Origin, "chart ") {
			continue
		}
		var s struct {
			Data       map[string]any `json:"data"`
			StringData map[string]any `json:"stringData"`
		}
		if err := json.Unmarshal(o.JSON, &s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o, err))
			continue
		}
		if len(s.Data) > 0 || len(s.StringData) > 0 {
			errs = append(errs, fmt.Errorf("%s: Secret carries data in git; use an ExternalSecret", o))
		}
	}
	return errs
}

// ScanFiles reads every YAML file under root, whether or not a kustomization
// uses it, and reports each Secret document with data or stringData (a
// SOPS-encrypted one, every value ENC[...], passes) and each kustomization
// with a secretGenerator. Directories named testdata and hidden ones are
// skipped, and so is check/ (the checker and its vendored charts, whose
// templates are not YAML).
func ScanFiles(root string) ([]error, error) {
	var findings []error
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == "testdata" || d.Name()[0] == '.' || path == filepath.Join(root, "check")) {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		f, err := scanFile(path)
		findings = append(findings, f...)
		return err
	})
	if err != nil {
		return findings, fmt.Errorf("scanning %s: %w", root, err)
	}
	return findings, nil
}

func scanFile(path string) ([]error, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	nodes, err := (&kio.ByteReader{Reader: strings.NewReader(string(b)), OmitReaderAnnotations: true}).Read()
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	var findings []error
	for i, n := range nodes {
		for _, f := range scanNode(n) {
			findings = append(findings, fmt.Errorf("%s, document %d: %w", path, i+1, f))
		}
	}
	return findings, nil
}

func scanNode(n *kyaml.RNode) []error {
	if n.YNode().Kind != kyaml.MappingNode {
		return nil
	}
	switch n.GetKind() {
	case "List":
		var errs []error
		items, _ := n.Pipe(kyaml.Lookup("items"))
		if items != nil {
			elems, _ := items.Elements()
			for _, e := range elems {
				errs = append(errs, scanNode(e)...)
			}
		}
		return errs
	case "Kustomization":
		if g := n.Field("secretGenerator"); g != nil && !kyaml.IsMissingOrNull(g.Value) {
			return []error{errors.New("kustomization has a secretGenerator: its inputs are plaintext in git")}
		}
	case "Secret":
		return scanSecret(n)
	}
	return nil
}

func scanSecret(n *kyaml.RNode) []error {
	encrypted := n.Field("sops") != nil
	var errs []error
	for _, field := range []string{"data", "stringData"} {
		f := n.Field(field)
		if f == nil || kyaml.IsMissingOrNull(f.Value) {
			continue
		}
		if f.Value.YNode().Kind != kyaml.MappingNode || len(f.Value.YNode().Content) == 0 {
			continue
		}
		if encrypted && allEncrypted(f.Value) {
			continue
		}
		errs = append(errs, fmt.Errorf("Secret %s has plaintext %s", n.GetName(), field))
	}
	return errs
}

func allEncrypted(m *kyaml.RNode) bool {
	c := m.YNode().Content
	for i := 1; i < len(c); i += 2 {
		if !strings.HasPrefix(c[i].Value, "ENC[") {
			return false
		}
	}
	return true
}
