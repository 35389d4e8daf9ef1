package check

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/upstream"
)

// ExitNodeApp is the Application whose pods must reach the internet only
// through the Tailscale exit node.
const ExitNodeApp = "marmithon"

// Report is the outcome of Check.
type Report struct {
	// Errors are the problems found; none means the tree passes.
	Errors []error
	// Unset lists the site values (SiteFile) still to fill in before a
	// first sync.
	Unset []string
	// Unrendered lists subcharts the checker could not render, with why.
	Unrendered []string
	// Apps and Objects count what was checked.
	Apps, Objects int
}

// Check runs every check on the repository at repoRoot, using scratch as a
// working directory for the generated JSON schemas.
func Check(ctx context.Context, repoRoot, scratch string) Report {
	var r Report
	add := func(errs ...error) { r.Errors = append(r.Errors, errs...) }
	t, errs := Load(repoRoot)
	add(errs...)
	all := t.AllObjects()
	r.Apps, r.Objects, r.Unrendered = len(t.Apps), len(all), t.Unrendered
	add(Validate(scratch, all)...)
	add(PlaintextSecrets(all)...)
	findings, err := ScanFiles(filepath.Join(repoRoot, "kubernetes"))
	add(findings...)
	add(err)
	n, err := ReadNixSide(ctx, repoRoot)
	add(err)
	if err == nil {
		add(t.Waves(n.LBProvider())...)
		z, err := ReadZone(n.ZoneFile)
		add(err)
		if err == nil {
			add(t.CAErrors(n, z)...)
			add(t.DNSErrors(n, z)...)
		}
	}
	add(HostPortRollouts(all)...)
	add(t.ProjectErrors()...)
	add(t.RetentionErrors()...)
	add(t.ScopeErrors()...)
	add(t.ServerSideApplyDrift()...)
	add(t.HostNetworkPolicies()...)
	add(SolverErrors(all)...)
	add(K3sAlertErrors(all)...)
	add(t.exitNodeErrors()...)
	add(upstreamErrors(repoRoot)...)
	r.Unset, err = UnsetValues(repoRoot)
	add(err)
	r.Errors = sortedErrors(compact(r.Errors))
	return r
}

func (t *Tree) exitNodeErrors() []error {
	for _, a := range t.Apps {
		if a.Metadata.Name == ExitNodeApp {
			return ExitNodeEgress(a.Objects, ExitNodeApp)
		}
	}
	return []error{fmt.Errorf("no Application %s", ExitNodeApp)}
}

func upstreamErrors(repoRoot string) []error {
	dir := filepath.Join(repoRoot, "kubernetes/check/upstream")
	var src upstream.Sources
	var lock upstream.Lock
	if err := upstream.ReadJSON(filepath.Join(dir, "sources.json"), &src); err != nil {
		return []error{err}
	}
	if err := upstream.ReadJSON(filepath.Join(dir, "lock.json"), &lock); err != nil {
		return []error{err}
	}
	return upstream.Verify(filepath.Join(repoRoot, "kubernetes"), src, lock)
}

func compact(errs []error) []error {
	out := errs[:0]
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}
