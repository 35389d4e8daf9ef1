package observability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// MetricsFile lists the agent's metric families, written by an agent test
// from a deployed agent's /metrics (agent/internal/cli/metricnames_test.go).
const MetricsFile = "agent-metrics.txt"

// Family is one metric family the agent exports.
type Family struct {
	Type   string
	Labels []string
}

// Metrics maps a metric name to its family.
type Metrics map[string]Family

// TargetLabels are the labels Prometheus adds to every series of an agent
// (ScrapeConfigs: targetLabels; instance from the target).
var TargetLabels = []string{"job", "instance", "host", "role", "arch", "hardware", "network"}

// ReadMetrics reads the metric families file: "name type label,label" per
// line, # comments.
func ReadMetrics(path string) (Metrics, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := Metrics{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("%s: %q is not \"name type [labels]\"", path, sc.Text())
		}
		fam := Family{Type: f[1]}
		if len(f) == 3 {
			fam.Labels = strings.Split(f[2], ",")
		}
		m[f[0]] = fam
	}
	return m, sc.Err()
}

// labels is every label a series of name may carry; ok is false for a
// metric that neither the agent nor Prometheus (up) has.
func (m Metrics) labels(name string) (all []string, ok bool) {
	if name == "up" {
		return TargetLabels, true
	}
	f, ok := m[name]
	return append(slices.Clone(TargetLabels), f.Labels...), ok
}

// known is every label any agent series may carry.
func (m Metrics) known() []string {
	all := slices.Clone(TargetLabels)
	for _, f := range m {
		all = append(all, f.Labels...)
	}
	return all
}

// NewParser is Prometheus' PromQL parser with its default options.
func NewParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// CheckExpr parses expr with Prometheus' parser and checks that it names
// only metrics the agent exports (or up), and only labels they carry.
func CheckExpr(p parser.Parser, expr string, m Metrics) []error {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return []error{fmt.Errorf("%q does not parse: %w", expr, err)}
	}
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%q: "+format, append([]any{expr}, a...)...))
	}
	known := m.known()
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			checkSelector(n, m, bad)
		case *parser.AggregateExpr:
			for _, l := range n.Grouping {
				if !slices.Contains(known, l) {
					bad("groups by label %q, which no agent series carries", l)
				}
			}
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				for _, l := range append(slices.Clone(n.VectorMatching.MatchingLabels), n.VectorMatching.Include...) {
					if !slices.Contains(known, l) {
						bad("matches on label %q, which no agent series carries", l)
					}
				}
			}
		}
		return nil
	})
	return errs
}

func checkSelector(vs *parser.VectorSelector, m Metrics, bad func(string, ...any)) {
	name := vs.Name
	for _, lm := range vs.LabelMatchers {
		if lm.Name == labels.MetricName && lm.Type == labels.MatchEqual {
			name = lm.Value
		}
	}
	all, ok := m.labels(name)
	if !ok {
		bad("names metric %q, which the agent does not export (%s)", name, MetricsFile)
		return
	}
	for _, lm := range vs.LabelMatchers {
		if lm.Name != labels.MetricName && !slices.Contains(all, lm.Name) {
			bad("selects %s by label %q, which it does not carry (it has %v)", name, lm.Name, all)
		}
	}
}

// grafanaVariables stand in for what Grafana substitutes before a query
// reaches Prometheus.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1d", "$host", ".*")

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// DashboardQueries returns every PromQL expression of a dashboard's JSON
// model (panel targets and query variables), Grafana's variables replaced
// by sample values. A label_values(selector, label) variable becomes
// `count by (label) (selector)`, which checks the same names.
func DashboardQueries(model []byte) ([]string, error) {
	type panel struct {
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []panel `json:"panels"` // of a collapsed row
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(model, &d); err != nil {
		return nil, fmt.Errorf("decoding the dashboard: %w", err)
	}
	var out []string
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, grafanaVariables.Replace(t.Expr))
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			return nil, fmt.Errorf("variable query %s is not a string", v.Query)
		}
		if mm := labelValuesRE.FindStringSubmatch(q); mm != nil {
			q = "count by (" + mm[2] + ") (" + mm[1] + ")"
		}
		out = append(out, grafanaVariables.Replace(q))
	}
	return out, nil
}
