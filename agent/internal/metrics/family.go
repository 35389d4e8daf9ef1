package metrics

import (
	"bytes"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	vm "github.com/VictoriaMetrics/metrics"
)

// Metric types, as written on TYPE lines.
const (
	typeGauge   = "gauge"
	typeCounter = "counter"
	typeSummary = "summary"
)

// family is one metric family: a name, its help text and type, and its
// series. The series live in a VictoriaMetrics set of their own, so that the
// family's HELP and TYPE lines are written once, with the help text, before
// them (the library itself writes empty HELP lines).
type family struct {
	name, help, typ string
	labels          []string
	set             *vm.Set
}

func newFamily(name, typ, help string, labels ...string) *family {
	return &family{name: name, help: help, typ: typ, labels: labels, set: vm.NewSet()}
}

// series returns the series name for the label values, in the order of
// f.labels, e.g. avalanche_phase_runs_total{phase="build",result="ok"}.
func (f *family) series(values ...string) string {
	if len(values) != len(f.labels) {
		panic("metrics: " + f.name + " takes " + strconv.Itoa(len(f.labels)) + " label values")
	}
	return seriesName(f.name, f.labels, values)
}

// gauge returns the gauge for the label values, creating it at zero.
func (f *family) gauge(values ...string) *vm.Gauge {
	return f.set.GetOrCreateGauge(f.series(values...), nil)
}

// counter returns the counter for the label values, creating it at zero.
func (f *family) counter(values ...string) *vm.Counter {
	return f.set.GetOrCreateCounter(f.series(values...))
}

// remove drops the series for the label values, if it exists.
func (f *family) remove(values ...string) {
	f.set.UnregisterMetric(f.series(values...))
}

// reset drops every series of the family.
func (f *family) reset() {
	f.set.UnregisterAllMetrics()
}

// writeTo writes the family in the text format; nothing at all when it has
// no series.
func (f *family) writeTo(w *bytes.Buffer) {
	var series bytes.Buffer
	f.set.WritePrometheus(&series)
	if series.Len() == 0 {
		return
	}
	writeHeader(w, f.name, f.typ, f.help)
	w.Write(series.Bytes())
}

// writeHeader writes a family's HELP and TYPE lines.
func writeHeader(w io.Writer, name, typ, help string) {
	io.WriteString(w, "# HELP "+name+" "+helpEscaper.Replace(help)+"\n# TYPE "+name+" "+typ+"\n")
}

// seriesName formats name{label="value",...}; labels and values pair up.
// Labels are written sorted by name, as Prometheus clients do.
func seriesName(name string, labels, values []string) string {
	if len(labels) == 0 {
		return name
	}
	order := make([]int, len(labels))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
	var b strings.Builder
	b.WriteString(name)
	for n, i := range order {
		if n == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(labels[i] + `="` + valueEscaper.Replace(values[i]) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

// Escaping of the text format: label values escape backslash, double quote
// and line feed; help text escapes backslash and line feed.
var (
	valueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// formatValue formats a sample value the way the library does: whole
// numbers without an exponent, other values in the shortest form.
func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
