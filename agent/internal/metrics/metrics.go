// Package metrics exposes the agent's Prometheus metrics: what each phase of
// the last pass did, what the host runs, and whether it needs attention. The
// metrics live in their own sets (never a global registry) and are meant to
// be scraped over the tailnet; the daemon serves Handler only when
// metrics.listen is set. The exposition is the Prometheus text format,
// written with github.com/VictoriaMetrics/metrics, which needs no protobuf.
package metrics

import (
	"bytes"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Phases of a pass, in the order they run. ObservePhase takes these names.
const (
	PhaseFetch    = "fetch"
	PhaseEvaluate = "evaluate"
	PhaseBuild    = "build"
	PhaseSecrets  = "secrets"
	PhaseActivate = "activate"
	PhaseConfirm  = "confirm"
)

// Phases lists the phases of a pass in the order they run.
var Phases = []string{PhaseFetch, PhaseEvaluate, PhaseBuild, PhaseSecrets, PhaseActivate, PhaseConfirm}

// Results of a phase, as passed to ObservePhase.
const (
	ResultOK      = "ok"
	ResultError   = "error"
	ResultSkipped = "skipped"
)

// Results of a fetch, as passed to ObserveFetch.
const (
	FetchUnchanged = "unchanged"
	FetchUpdated   = "updated"
	FetchError     = "error"
)

// contentType is the Prometheus text format.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// Metrics holds the agent's metric families. Its methods are safe for
// concurrent use.
type Metrics struct {
	families []*family // every avalanche_* family, sorted by name

	phaseDuration  *family
	phaseSuccess   *family
	phaseTimestamp *family
	phaseRuns      *family
	fetches        *family

	// Families whose series exist only while their value is known.
	deployedInfo       *family
	deployedTimestamp  *family
	exitNodeAdvertised *family
	exitNodeApproved   *family
	exitNodeOnline     *family

	deployments *family // ended deployments by result
	webhook     *family // webhook requests by HTTP status code

	drift        *vm.Gauge
	rebootNeeded *vm.Gauge
	suspended    *vm.Gauge
	pending      *vm.Gauge
	up           *vm.Gauge

	// handlerErrors counts scrapes that could not read a /proc source
	// (gathering) or not send the exposition (encoding).
	handlerErrors *family

	mu       sync.Mutex // serialises Update and Restore
	deployed []string   // label values of the current avalanche_deployed_info series
}

// New returns Metrics with avalanche_build_info set; the exposition also
// carries the Go runtime and process families.
func New(version string) *Metrics {
	gauge := func(name, help string, labels ...string) *family {
		return newFamily("avalanche_"+name, typeGauge, help, labels...)
	}
	m := &Metrics{
		phaseDuration:      gauge("phase_last_duration_seconds", "How long the last run of each phase took.", "phase"),
		phaseSuccess:       gauge("phase_last_success", "1 when the last run of the phase succeeded, 0 when it failed.", "phase"),
		phaseTimestamp:     gauge("phase_last_timestamp_seconds", "When the last run of the phase ended, in Unix seconds.", "phase"),
		phaseRuns:          newFamily("avalanche_phase_runs_total", typeCounter, "Phase runs since the agent started, by result (ok, error, skipped).", "phase", "result"),
		fetches:            newFamily("avalanche_fetches_total", typeCounter, "Fetches since the agent started, by result (unchanged, updated, error).", "result"),
		deployedInfo:       gauge("deployed_info", "The deployment the host runs; always 1.", "commit", "generation", "store_path"),
		deployedTimestamp:  gauge("deployed_timestamp_seconds", "When the running deployment was made, in Unix seconds."),
		exitNodeAdvertised: gauge("exit_node_advertised", "1 when this host advertises itself as a Tailscale exit node."),
		exitNodeApproved:   gauge("exit_node_approved", "1 when the tailnet approved this host as an exit node."),
		exitNodeOnline:     gauge("exit_node_online", "1 when the exit node is online in the tailnet."),
		deployments:        newFamily("avalanche_deployments_total", typeCounter, "Deployments ended since the agent started, by result (deployed, up-to-date, failed, rolled-back, interrupted, superseded).", "result"),
		webhook:            newFamily("avalanche_webhook_requests_total", typeCounter, "Webhook requests answered since the agent started, by HTTP status code.", "code"),
		handlerErrors:      newFamily("promhttp_metric_handler_errors_total", typeCounter, "Scrapes that could not read a /proc source (gathering) or not send the exposition (encoding).", "cause"),
	}
	build := gauge("build_info", "Version of the agent and of Go it was built with; always 1.", "version", "goversion")
	build.gauge(version, runtime.Version()).Set(1)
	drift := gauge("drift", "1 while the running system is not the one the agent deployed (a hand-run rebuild, a manual rollback, a boot-menu choice); status says why.")
	rebootNeeded := gauge("reboot_needed", "1 when kernel, initrd or modules differ from the booted system.")
	suspended := gauge("suspended", "1 when deployments are suspended.")
	pending := gauge("pending_confirmation", "1 while an activation waits to be confirmed healthy.")
	up := gauge("up", "1 while the agent runs.")
	m.rebootNeeded, m.suspended, m.pending, m.up = rebootNeeded.gauge(), suspended.gauge(), pending.gauge(), up.gauge()
	m.drift = drift.gauge()
	for _, r := range DeploymentResults {
		m.deployments.counter(r)
	}
	m.up.Set(1)
	for _, r := range []string{FetchUnchanged, FetchUpdated, FetchError} {
		m.fetches.counter(r) // export zeros, so rate() works from the first scrape
	}
	for _, c := range []string{causeEncoding, causeGathering} {
		m.handlerErrors.counter(c)
	}
	m.families = []*family{
		build, m.phaseDuration, m.phaseSuccess, m.phaseTimestamp, m.phaseRuns, m.fetches,
		m.deployedInfo, m.deployedTimestamp, m.exitNodeAdvertised, m.exitNodeApproved, m.exitNodeOnline,
		rebootNeeded, suspended, pending, up, drift, m.deployments, m.webhook,
	}
	slices.SortFunc(m.families, func(a, b *family) int { return strings.Compare(a.name, b.name) })
	return m
}

// Causes of handler errors, the label values of promhttp_metric_handler_errors_total.
const (
	causeEncoding  = "encoding"
	causeGathering = "gathering"
)

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		m.writeTo(&b)
		w.Header().Set("Content-Type", contentType)
		if _, err := w.Write(b.Bytes()); err != nil {
			m.handlerErrors.counter(causeEncoding).Inc()
		}
	})
}

// writeTo writes every family, sorted by name: the agent's own, the Go
// runtime's, the process's and the handler's errors.
func (m *Metrics) writeTo(b *bytes.Buffer) {
	m.mu.Lock()
	families := m.families
	m.mu.Unlock()
	for _, f := range families {
		f.writeTo(b)
	}
	writeGo(b)
	p, err := readProcess()
	if err != nil {
		m.handlerErrors.counter(causeGathering).Inc()
	}
	p.writeTo(b)
	m.handlerErrors.writeTo(b)
}

// ObservePhase records one run of a phase that ended now. A skipped phase
// only counts in avalanche_phase_runs_total: the last_* gauges keep
// describing the last time the phase really ran.
func (m *Metrics) ObservePhase(phase, result string, d time.Duration) {
	m.phaseRuns.counter(phase, result).Inc()
	if result == ResultSkipped {
		return
	}
	m.phaseDuration.gauge(phase).Set(d.Seconds())
	m.setPhase(phase, result == ResultOK, time.Now())
}

func (m *Metrics) setPhase(phase string, ok bool, at time.Time) {
	m.phaseSuccess.gauge(phase).Set(boolValue(ok))
	m.phaseTimestamp.gauge(phase).Set(unixSeconds(at))
}

// ObserveFetch counts one fetch; call it exactly once per fetch with
// FetchUnchanged, FetchUpdated or FetchError.
func (m *Metrics) ObserveFetch(result string) {
	m.fetches.counter(result).Inc()
}

// DeploymentResults are the results a deployment ends with, the label
// values of avalanche_deployments_total.
var DeploymentResults = []string{"deployed", "up-to-date", "failed", "rolled-back", "interrupted", "superseded"}

// ObserveDeployment counts a deployment that ended with result.
func (m *Metrics) ObserveDeployment(result string) {
	m.deployments.counter(result).Inc()
}

// WebhookServed exports avalanche_webhook_requests_total from zero for the
// answers that matter (202 a push accepted, 401 a bad signature), so that
// rate() and increase() work from the first scrape; call it when the
// webhook listens.
func (m *Metrics) WebhookServed() {
	for _, code := range []string{"202", "401"} {
		m.webhook.counter(code)
	}
}

// ObserveWebhook counts a webhook request answered with code.
func (m *Metrics) ObserveWebhook(code int) {
	m.webhook.counter(strconv.Itoa(code)).Inc()
}

// Update sets the host gauges from a status snapshot.
func (m *Metrics) Update(s status.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.Deployed != nil {
		m.setDeployed(s.Deployed.Commit, s.Deployed.Generation, s.Deployed.StorePath, s.Deployed.Time)
	} else {
		m.clearDeployed()
	}
	m.rebootNeeded.Set(boolValue(s.RebootNeeded))
	m.suspended.Set(boolValue(s.Suspended))
	m.pending.Set(boolValue(s.Pending != nil))
	m.drift.Set(boolValue(s.Drift != nil))
	m.setExitNode(s.ExitNode)
	m.up.Set(1)
}

// setDeployed replaces the avalanche_deployed_info series. The new series is
// set before the old one goes, so a scrape in between never sees none.
func (m *Metrics) setDeployed(commit string, generation int, storePath string, at time.Time) {
	labels := []string{commit, strconv.Itoa(generation), storePath}
	m.deployedInfo.gauge(labels...).Set(1)
	if m.deployed != nil && !slices.Equal(m.deployed, labels) {
		m.deployedInfo.remove(m.deployed...)
	}
	m.deployed = labels
	if at.IsZero() {
		m.deployedTimestamp.reset()
		return
	}
	m.deployedTimestamp.gauge().Set(unixSeconds(at))
}

func (m *Metrics) clearDeployed() {
	m.deployedInfo.reset()
	m.deployedTimestamp.reset()
	m.deployed = nil
}

func (m *Metrics) setExitNode(e *status.ExitNode) {
	if e == nil {
		m.exitNodeAdvertised.reset()
		m.exitNodeApproved.reset()
		m.exitNodeOnline.reset()
		return
	}
	m.exitNodeAdvertised.gauge().Set(boolValue(e.Advertised))
	m.exitNodeApproved.gauge().Set(boolValue(e.Approved))
	m.exitNodeOnline.gauge().Set(boolValue(e.Online))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}
