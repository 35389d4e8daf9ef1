package check

import (
	"fmt"
	"os"
	"path/filepath"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/upstream"
)

// WriteHelmRepo writes a Helm chart repository (index.yaml and the
// packaged charts) into dir for each vendored chart pinned from repoURL,
// with the release steps applied, as `helm repo index` would serve them.
// Subcharts that are not vendored (ChartPin.Missing) are dropped from the
// chart's dependencies, so a client renders the chart without them.
func WriteHelmRepo(upstreamDir, repoURL, dir, baseURL string) error {
	var pins ChartPins
	if err := upstream.ReadJSON(filepath.Join(upstreamDir, "charts.json"), &pins); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n := 0
	for _, p := range pins.Charts {
		if !sameRepo(p.RepoURL, repoURL) {
			continue
		}
		chartMu.Lock()
		c, err := loadChart(upstreamDir, p)
		chartMu.Unlock()
		if err != nil {
			return err
		}
		if _, err := chartutil.Save(withoutMissing(c, p), dir); err != nil {
			return fmt.Errorf("packaging chart %s: %w", p.Chart, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no vendored chart from %s", repoURL)
	}
	idx, err := repo.IndexDirectory(dir, baseURL)
	if err != nil {
		return fmt.Errorf("indexing %s: %w", dir, err)
	}
	return idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644)
}

// withoutMissing returns a shallow copy of c whose metadata no longer lists
// the subcharts that are not vendored: those of p.Missing, and those that
// the values disable and were never vendored (`helm template` checks every
// listed subchart is present, enabled or not).
func withoutMissing(c *chart.Chart, p ChartPin) *chart.Chart {
	cc := *c
	md := *c.Metadata
	md.Dependencies = nil
	have := map[string]bool{}
	for _, d := range c.Dependencies() {
		have[d.Name()] = true
	}
	for _, d := range c.Metadata.Dependencies {
		if _, missing := p.Missing[d.Name]; !missing && have[d.Name] {
			md.Dependencies = append(md.Dependencies, d)
		}
	}
	cc.Metadata = &md
	if c.Lock != nil {
		l := *c.Lock
		l.Dependencies = nil
		for _, d := range c.Lock.Dependencies {
			if _, missing := p.Missing[d.Name]; !missing && have[d.Name] {
				l.Dependencies = append(l.Dependencies, d)
			}
		}
		cc.Lock = &l
	}
	return &cc
}
