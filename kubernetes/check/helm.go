package check

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"sigs.k8s.io/kustomize/kyaml/kio"
)

// KubeVersion is the Kubernetes version charts are rendered for: the
// fleet's k3s.
const KubeVersion = "v1.37.0"

// ChartPin maps a chart an Application names (repoURL, chart, version) to
// its vendored copy under kubernetes/check/upstream, with the steps
// upstream's release packaging applies to the source tree.
type ChartPin struct {
	RepoURL string `json:"repoURL"`
	Chart   string `json:"chart"`
	Version string `json:"version"`
	// Dir is the vendored chart, relative to kubernetes/check/upstream.
	Dir string `json:"dir"`
	// SetVersion and SetAppVersion are what the release tool writes into
	// Chart.yaml (the source tree carries a placeholder).
	SetVersion    string `json:"setVersion,omitempty"`
	SetAppVersion string `json:"setAppVersion,omitempty"`
	// CRDTemplates are CRD files (relative to upstream/) that the release
	// tool wraps into templates behind the condition If.
	CRDTemplates *struct {
		From string `json:"from"`
		If   string `json:"if"`
	} `json:"crdTemplates,omitempty"`
	// Missing lists subcharts that no reachable registry serves, with why:
	// they are not rendered, and the checker says so.
	Missing map[string]string `json:"missing,omitempty"`
	// Why says where the chart came from when it is not plainly the tag.
	Why string `json:"why,omitempty"`
}

// ChartPins is upstream/charts.json.
type ChartPins struct {
	Comment string     `json:"comment"`
	Charts  []ChartPin `json:"charts"`
}

// Rendered is what one Helm source produced.
type Rendered struct {
	Objects []Object
	// Unrendered names the enabled subcharts that were not available.
	Unrendered []string
}

var (
	chartMu    sync.Mutex
	chartCache = map[string]*chart.Chart{}
	renderMemo = map[string]Rendered{}
)

// loadChart loads the pinned chart once and applies the release steps.
func loadChart(upstreamDir string, p ChartPin) (*chart.Chart, error) {
	key := filepath.Join(upstreamDir, p.Dir)
	if c, ok := chartCache[key]; ok {
		return c, nil
	}
	c, err := loader.Load(key)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", p.Dir, err)
	}
	if p.SetVersion != "" {
		c.Metadata.Version = p.SetVersion
	}
	if p.SetAppVersion != "" {
		c.Metadata.AppVersion = p.SetAppVersion
	}
	if strings.TrimPrefix(c.Metadata.Version, "v") != strings.TrimPrefix(p.Version, "v") {
		return nil, fmt.Errorf("chart %s: vendored chart is version %s, the Application pins %s", p.Dir, c.Metadata.Version, p.Version)
	}
	if t := p.CRDTemplates; t != nil {
		if err := addCRDTemplates(c, filepath.Join(upstreamDir, t.From), t.If); err != nil {
			return nil, err
		}
	}
	chartCache[key] = c
	return c, nil
}

func addCRDTemplates(c *chart.Chart, dir, cond string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		data := "{{- if " + cond + " }}\n" + string(b) + "\n{{- end }}\n"
		c.Templates = append(c.Templates, &chart.File{Name: "templates/crd-" + filepath.Base(f), Data: []byte(data)})
	}
	return nil
}

// RenderChart renders a pinned chart the way ArgoCD does (`helm template
// --include-crds` with the release name, the destination namespace and the
// value files), validating the values against the chart's values.schema.json
// files. Renders are memoized by chart and values.
func RenderChart(upstreamDir string, p ChartPin, release, namespace string, valueFiles [][]byte) (Rendered, error) {
	chartMu.Lock()
	defer chartMu.Unlock()
	key := strings.Join([]string{p.Dir, release, namespace, string(bytes.Join(valueFiles, []byte("\n---\n")))}, "\x00")
	if r, ok := renderMemo[key]; ok {
		return r, nil
	}
	r, err := renderChart(upstreamDir, p, release, namespace, valueFiles)
	if err == nil {
		renderMemo[key] = r
	}
	return r, err
}

func renderChart(upstreamDir string, p ChartPin, release, namespace string, valueFiles [][]byte) (Rendered, error) {
	where := fmt.Sprintf("chart %s %s", p.Chart, p.Version)
	c, err := loadChart(upstreamDir, p)
	if err != nil {
		return Rendered{}, err
	}
	vals := map[string]any{}
	for _, vf := range valueFiles {
		v, err := chartutil.ReadValues(vf)
		if err != nil {
			return Rendered{}, fmt.Errorf("%s: reading values: %w", where, err)
		}
		vals = chartutil.MergeTables(v, vals)
	}
	// ProcessDependencies changes the chart's dependency list: work on a
	// shallow copy so the cached chart stays whole.
	cc := *c
	cc.SetDependencies(c.Dependencies()...)
	if err := chartutil.ProcessDependenciesWithMerge(&cc, vals); err != nil {
		return Rendered{}, fmt.Errorf("%s: dependencies: %w", where, err)
	}
	unrendered, err := missingDependencies(&cc, p)
	if err != nil {
		return Rendered{}, fmt.Errorf("%s: %w", where, err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return Rendered{}, err
	}
	caps.KubeVersion = *kv
	top, err := chartutil.ToRenderValues(&cc, vals, chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true}, caps)
	if err != nil {
		return Rendered{}, fmt.Errorf("%s: values: %w", where, err)
	}
	files, err := engine.Render(&cc, top)
	if err != nil {
		return Rendered{}, fmt.Errorf("%s: rendering: %w", where, err)
	}
	for _, crd := range cc.CRDObjects() {
		files[crd.Filename] = string(crd.File.Data)
	}
	objs, err := parseRendered(where, files)
	return Rendered{Objects: objs, Unrendered: unrendered}, err
}

// missingDependencies returns the enabled dependencies that were not
// vendored; each must be listed in the pin's Missing with a reason.
func missingDependencies(c *chart.Chart, p ChartPin) ([]string, error) {
	have := map[string]bool{}
	for _, d := range c.Dependencies() {
		have[d.Name()] = true
	}
	var out []string
	for _, d := range c.Metadata.Dependencies {
		if !d.Enabled || have[d.Name] || (d.Alias != "" && have[d.Alias]) {
			continue
		}
		why, ok := p.Missing[d.Name]
		if !ok {
			return nil, fmt.Errorf("subchart %s %s is enabled but not vendored", d.Name, d.Version)
		}
		out = append(out, fmt.Sprintf("%s %s (%s)", d.Name, d.Version, why))
	}
	return out, nil
}

func parseRendered(where string, files map[string]string) ([]Object, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Object
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") || strings.TrimSpace(files[n]) == "" {
			continue
		}
		nodes, err := (&kio.ByteReader{Reader: strings.NewReader(files[n]), OmitReaderAnnotations: true}).Read()
		if err != nil {
			return nil, fmt.Errorf("%s: parsing rendered %s: %w", where, n, err)
		}
		for _, nd := range nodes {
			b, err := nd.MarshalJSON()
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", where, n, err)
			}
			if nd.GetKind() == "" {
				continue
			}
			out = append(out, Object{Origin: strings.TrimSpace(where + " " + n), APIVersion: nd.GetApiVersion(), Kind: nd.GetKind(),
				Namespace: nd.GetNamespace(), Name: nd.GetName(), JSON: b})
		}
	}
	return out, nil
}
