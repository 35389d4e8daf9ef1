// Package metrics exposes the agent's Prometheus metrics: what each phase of
// the last pass did, what the host runs, and whether it needs attention. The
// metrics live in their own registry (never the global one) and are meant to
// be scraped over the tailnet; the daemon serves Handler only when
// metrics.listen is set.
package metrics

import (
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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

const namespace = "avalanche"

// Metrics holds the agent's collectors and the registry that serves them.
// Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	phaseDuration  *prometheus.GaugeVec
	phaseSuccess   *prometheus.GaugeVec
	phaseTimestamp *prometheus.GaugeVec
	phaseRuns      *prometheus.CounterVec
	fetches        *prometheus.CounterVec

	// Label-less vectors: a series exists only while its value is known.
	deployedInfo       *prometheus.GaugeVec
	deployedTimestamp  *prometheus.GaugeVec
	exitNodeAdvertised *prometheus.GaugeVec
	exitNodeApproved   *prometheus.GaugeVec
	exitNodeOnline     *prometheus.GaugeVec

	rebootNeeded prometheus.Gauge
	suspended    prometheus.Gauge
	pending      prometheus.Gauge
	up           prometheus.Gauge

	mu       sync.Mutex // serialises Update and Restore
	deployed []string   // label values of the current avalanche_deployed_info series
}

// New returns Metrics registered in a fresh registry that also carries the Go
// runtime and process collectors and avalanche_build_info.
func New(version string) *Metrics {
	m := &Metrics{
		reg:            prometheus.NewRegistry(),
		phaseDuration:  gaugeVec("phase_last_duration_seconds", "How long the last run of each phase took.", "phase"),
		phaseSuccess:   gaugeVec("phase_last_success", "1 when the last run of the phase succeeded, 0 when it failed.", "phase"),
		phaseTimestamp: gaugeVec("phase_last_timestamp_seconds", "When the last run of the phase ended, in Unix seconds.", "phase"),
		phaseRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "phase_runs_total",
			Help: "Phase runs since the agent started, by result (ok, error, skipped).",
		}, []string{"phase", "result"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "fetches_total",
			Help: "Fetches since the agent started, by result (unchanged, updated, error).",
		}, []string{"result"}),
		deployedInfo:       gaugeVec("deployed_info", "The deployment the host runs; always 1.", "commit", "generation", "store_path"),
		deployedTimestamp:  gaugeVec("deployed_timestamp_seconds", "When the running deployment was made, in Unix seconds."),
		exitNodeAdvertised: gaugeVec("exit_node_advertised", "1 when this host advertises itself as a Tailscale exit node."),
		exitNodeApproved:   gaugeVec("exit_node_approved", "1 when the tailnet approved this host as an exit node."),
		exitNodeOnline:     gaugeVec("exit_node_online", "1 when the exit node is online in the tailnet."),
		rebootNeeded:       gauge("reboot_needed", "1 when kernel, initrd or modules differ from the booted system."),
		suspended:          gauge("suspended", "1 when deployments are suspended."),
		pending:            gauge("pending_confirmation", "1 while an activation waits to be confirmed healthy."),
		up:                 gauge("up", "1 while the agent runs."),
	}
	for _, r := range []string{FetchUnchanged, FetchUpdated, FetchError} {
		m.fetches.WithLabelValues(r) // export zeros, so rate() works from the first scrape
	}
	build := gaugeVec("build_info", "Version of the agent and of Go it was built with; always 1.", "version", "goversion")
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m.up.Set(1)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.phaseDuration, m.phaseSuccess, m.phaseTimestamp, m.phaseRuns, m.fetches,
		m.deployedInfo, m.deployedTimestamp, m.exitNodeAdvertised, m.exitNodeApproved, m.exitNodeOnline,
		m.rebootNeeded, m.suspended, m.pending, m.up,
	)
	return m
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObservePhase records one run of a phase that ended now. A skipped phase
// only counts in avalanche_phase_runs_total: the last_* gauges keep
// describing the last time the phase really ran.
func (m *Metrics) ObservePhase(phase, result string, d time.Duration) {
	m.phaseRuns.WithLabelValues(phase, result).Inc()
	if result == ResultSkipped {
		return
	}
	m.phaseDuration.WithLabelValues(phase).Set(d.Seconds())
	m.setPhase(phase, result == ResultOK, time.Now())
}

func (m *Metrics) setPhase(phase string, ok bool, at time.Time) {
	m.phaseSuccess.WithLabelValues(phase).Set(boolValue(ok))
	m.phaseTimestamp.WithLabelValues(phase).Set(unixSeconds(at))
}

// ObserveFetch counts one fetch; call it exactly once per fetch with
// FetchUnchanged, FetchUpdated or FetchError.
func (m *Metrics) ObserveFetch(result string) {
	m.fetches.WithLabelValues(result).Inc()
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
	m.setExitNode(s.ExitNode)
	m.up.Set(1)
}

// setDeployed replaces the avalanche_deployed_info series. The new series is
// set before the old one goes, so a scrape in between never sees none.
func (m *Metrics) setDeployed(commit string, generation int, storePath string, at time.Time) {
	labels := []string{commit, strconv.Itoa(generation), storePath}
	m.deployedInfo.WithLabelValues(labels...).Set(1)
	if m.deployed != nil && !slices.Equal(m.deployed, labels) {
		m.deployedInfo.DeleteLabelValues(m.deployed...)
	}
	m.deployed = labels
	if at.IsZero() {
		m.deployedTimestamp.Reset()
		return
	}
	m.deployedTimestamp.WithLabelValues().Set(unixSeconds(at))
}

func (m *Metrics) clearDeployed() {
	m.deployedInfo.Reset()
	m.deployedTimestamp.Reset()
	m.deployed = nil
}

func (m *Metrics) setExitNode(e *status.ExitNode) {
	if e == nil {
		m.exitNodeAdvertised.Reset()
		m.exitNodeApproved.Reset()
		m.exitNodeOnline.Reset()
		return
	}
	m.exitNodeAdvertised.WithLabelValues().Set(boolValue(e.Advertised))
	m.exitNodeApproved.WithLabelValues().Set(boolValue(e.Approved))
	m.exitNodeOnline.WithLabelValues().Set(boolValue(e.Online))
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
