package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// The crash-consistency suite injects a stop (SIGTERM), a kill of the agent
// alone (SIGKILL: what it started lives on, like the transient switch unit
// under systemd) and a power cut (everything killed at once) into every
// phase of a deployment, into rollbacks and into recovery itself, at random
// instants. After each restart it checks the invariants below. The agent
// runs built with -tags failpoint, which marks where each phase begins
// (see agent/internal/failpoint) so injections can be aimed; nothing else
// in it differs.
var (
	crashPhases  = []string{"fetch", "verify", "evaluate", "build", "secrets", "activate", "confirm", "rollback", "recovery"}
	crashSignals = []string{"SIGTERM", "SIGKILL agent", "power cut"}
)

// phaseWork is about how long each phase's work takes with this suite's
// test flake; an injection lands at a uniform instant within the failpoint
// delay plus this.
var phaseWork = map[string]time.Duration{
	"fetch": 60 * time.Millisecond, "verify": 10 * time.Millisecond, "evaluate": 500 * time.Millisecond,
	"build": 500 * time.Millisecond, "secrets": 150 * time.Millisecond, "activate": 400 * time.Millisecond,
	"confirm": 100 * time.Millisecond, "rollback": 400 * time.Millisecond, "recovery": 400 * time.Millisecond,
}

const failpointDelay = 30 * time.Millisecond

// crashRun is one run of the suite and what it saw.
type crashRun struct {
	h          *host
	units      string            // the fake systemd's unit directory
	good       map[string]string // good commits and their secret values
	bad        map[string]bool   // commits made to fail their health check
	head       string
	n          int
	counts     map[[2]string]int // (phase, signal) → injections
	landed     map[[2]string]int // (phase the agent was in, signal) → injections
	violations []string
	// overlapLine is the switch log line of the last overlap reported.
	overlapLine int
	// refusedGood are good commits already reported as refused.
	refusedGood map[string]bool
}

// TestReliabilityCrashConsistency: 27 injections (every phase × signal
// once); AVALANCHE_BENCH_FULL=1 makes it 540 (20 each, 60 per phase).
func TestReliabilityCrashConsistency(t *testing.T) {
	rounds := 1
	if fullRun() {
		rounds = 20
	}
	r := newCrashRun(t)
	r.deploy(t, false)
	r.h.settle(1, 2*time.Minute)
	from := r.logSize()
	r.deploy(t, false)
	if s := r.h.sync(); s.Result != "deployed" {
		t.Fatalf("calibration deployment = %+v", s)
	}
	r.calibrate(from)
	t.Logf("phase durations measured: %v", phaseWork)
	for round := 0; round < rounds; round++ {
		for _, sig := range crashSignals {
			for _, phase := range crashPhases {
				r.inject(t, phase, sig)
			}
		}
	}
	r.report(t)
}

func newCrashRun(t *testing.T) *crashRun {
	h := newHost(t, hostOptions{secrets: true, mutate: func(c map[string]any) {
		d := c["deploy"].(map[string]any)
		d["systemdRun"], d["confirmTimeout"] = true, "10s" // generous: a loaded machine must not fail a good commit's confirmation
		d["healthChecks"] = []string{"! grep -q bad " + filepath.Join(d["currentSystem"].(string), "marker")}
	}})
	env, _ := nixtest.FakeSystemd(t, h.dir)
	h.binary = buildAgent(t, "failpoint")
	h.env = append(env, "AVALANCHE_FAILPOINT_DELAY="+failpointDelay.String())
	h.opts.SwitchLog = filepath.Join(h.dir, "switch.log")
	h.opts.SwitchSleep, h.opts.BuildSleep = 300*time.Millisecond, 300*time.Millisecond
	return &crashRun{h: h, units: filepath.Join(h.dir, "units"), good: map[string]string{}, bad: map[string]bool{},
		counts: map[[2]string]int{}, landed: map[[2]string]int{}, refusedGood: map[string]bool{}}
}

// deploy pushes the next commit: good (a new system and a new secret) or
// bad (a system that fails its health check after switching).
func (r *crashRun) deploy(t *testing.T, bad bool) {
	r.n++
	r.h.opts.Marker = fmt.Sprintf("v%d", r.n)
	value := fmt.Sprintf("secret-%d", r.n)
	if bad {
		r.h.opts.Marker = fmt.Sprintf("bad-%d", r.n)
	}
	r.head = r.h.commit(fmt.Sprintf("commit %d", r.n), value)
	if bad {
		r.bad[r.head] = true
	} else {
		r.good[r.head] = value
	}
	if r.h.proc == nil {
		r.h.start()
	}
}

// inject aims signal at phase of a deployment, restarts the agent, lets
// it settle and checks the invariants.
func (r *crashRun) inject(t *testing.T, phase, signal string) {
	h := r.h
	what := fmt.Sprintf("injection %d (%s during %s)", len(r.violations)+r.total()+1, signal, phase)
	r.deploy(t, phase == "rollback")
	from := r.logSize()
	if phase == "recovery" {
		// Leave a deployment open: a power cut in its activation.
		h.trigger()
		r.waitFailpoint(t, what, "activate", from)
		r.powerCut()
		from = r.logSize()
		h.start()
	} else {
		h.trigger()
	}
	r.waitFailpoint(t, what, phase, from)
	time.Sleep(time.Duration(rand.Int64N(int64(failpointDelay + phaseWork[phase]))))
	landed := r.lastFailpoint(from)
	if phase == "recovery" && landed != "none" {
		landed = "recovery" // its rollback or confirm is part of it
	}
	switch signal {
	case "SIGTERM":
		h.stop()
	case "SIGKILL agent":
		syscall.Kill(h.proc.Process.Pid, syscall.SIGKILL)
		h.wait()
	case "power cut":
		r.powerCut()
	}
	r.counts[[2]string{phase, signal}]++
	r.landed[[2]string{landed, signal}]++
	h.start()
	r.settle(t, what)
	r.check(what)
}

func (r *crashRun) total() int {
	n := 0
	for _, c := range r.counts {
		n += c
	}
	return n
}

// powerCut kills the agent's process group and every transient unit it
// started, at once, and notes it in the switch log: a switch that was
// running has no end line.
func (r *crashRun) powerCut() {
	syscall.Kill(-r.h.proc.Process.Pid, syscall.SIGKILL)
	pids, _ := filepath.Glob(filepath.Join(r.units, "*.pid"))
	for _, p := range pids {
		b, _ := os.ReadFile(p)
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	r.h.wait()
	f, _ := os.OpenFile(r.h.opts.SwitchLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	f.WriteString("cut\n")
	f.Close()
}

func (r *crashRun) logSize() int64 {
	fi, err := os.Stat(r.h.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// failpoint is one "failpoint: <name> <unix ns>" line of the agent's log.
type failpoint struct {
	name string
	at   time.Time
}

// failpoints returns the failpoints the agent's log shows after offset.
func (r *crashRun) failpoints(from int64) []failpoint {
	b, _ := os.ReadFile(r.h.logPath)
	if int64(len(b)) < from {
		return nil
	}
	var fps []failpoint
	sc := bufio.NewScanner(bytes.NewReader(b[from:]))
	for sc.Scan() {
		var fp failpoint
		var ns int64
		if _, err := fmt.Sscanf(sc.Text(), "failpoint: %s %d", &fp.name, &ns); err == nil {
			fp.at = time.Unix(0, ns)
			fps = append(fps, fp)
		}
	}
	return fps
}

func (r *crashRun) lastFailpoint(from int64) string {
	fps := r.failpoints(from)
	if len(fps) == 0 {
		return "none"
	}
	return fps[len(fps)-1].name
}

// calibrate measures how long each phase of a whole deployment took, from
// one failpoint to the next: injections are aimed within that.
func (r *crashRun) calibrate(from int64) {
	fps := r.failpoints(from)
	for i := 0; i+1 < len(fps); i++ {
		if _, ok := phaseWork[fps[i].name]; ok {
			phaseWork[fps[i].name] = max(fps[i+1].at.Sub(fps[i].at)-failpointDelay, 5*time.Millisecond)
		}
	}
}

func (r *crashRun) waitFailpoint(t *testing.T, what, name string, from int64) {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Millisecond) {
		if slices.ContainsFunc(r.failpoints(from), func(fp failpoint) bool { return fp.name == name }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the agent never reached %s; failpoints %v\n%s", what, name, r.failpoints(from), r.h.logTail())
		}
	}
}

// settle waits until the restarted agent finished recovering and deploying
// what main holds: the head deployed when it is good, refused when bad.
func (r *crashRun) settle(t *testing.T, what string) {
	h := r.h
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		s, err := h.status()
		st, serr := r.readState()
		done := err == nil && serr == nil && s.Passes >= 1 && (s.State == "idle" || s.State == "failed") && st.flightClosed &&
			st.Deployed != nil && (st.Deployed.Commit == r.head || st.isBad(r.head))
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the agent never settled: status %+v, %v\n%s", what, s, err, h.logTail())
		}
	}
}

// crashState is what the suite reads of state.json and the journal.
type crashState struct {
	Deployed     *deployment     `json:"deployed"`
	Bad          []badCommit     `json:"bad"`
	Drift        json.RawMessage `json:"drift"`
	flightClosed bool
}

// badCommit is a refused commit and why.
type badCommit struct {
	Commit string `json:"commit"`
	Phase  string `json:"phase"`
	Reason string `json:"reason"`
}

func (s crashState) isBad(c string) bool {
	return slices.ContainsFunc(s.Bad, func(b badCommit) bool { return b.Commit == c })
}

func (r *crashRun) readState() (crashState, error) {
	var st crashState
	b, err := os.ReadFile(filepath.Join(r.h.stateDir(), "state.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, err
	}
	j, err := os.ReadFile(filepath.Join(r.h.stateDir(), "journal"))
	st.flightClosed = err == nil && len(bytes.TrimSpace(j)) == 0
	return st, nil
}

// check records every invariant that does not hold once the restarted
// agent settled.
func (r *crashRun) check(what string) {
	bad := func(format string, a ...any) {
		r.violations = append(r.violations, what+": "+fmt.Sprintf(format, a...))
	}
	st, err := r.readState()
	if err != nil {
		bad("reading the state: %v", err)
		return
	}
	// The state names what actually runs, and reports no drift.
	if running := resolve(r.h.opts.CurrentSystemLink); st.Deployed == nil || st.Deployed.StorePath != running {
		bad("the state names %+v; the host runs %s", st.Deployed, running)
		return
	}
	if len(st.Drift) > 0 && string(st.Drift) != "null" {
		bad("drift reported: %s", st.Drift)
	}
	// A commit is refused only for its own fault.
	for _, b := range st.Bad {
		if !r.bad[b.Commit] && !r.refusedGood[b.Commit] {
			r.refusedGood[b.Commit] = true
			bad("good commit %s refused (%s: %s)", b.Commit, b.Phase, b.Reason)
		}
	}
	// The next good commit deploys without --force; an unhealthy one is
	// refused and the good one before it runs.
	if _, ok := r.good[r.head]; ok && st.Deployed.Commit != r.head {
		bad("the good head %s is not deployed (deployed %s)", r.head, st.Deployed.Commit)
	}
	if r.bad[r.head] && !st.isBad(r.head) {
		bad("the unhealthy head %s is not refused", r.head)
	}
	if line, msg := switchOverlap(r.h.opts.SwitchLog); line > r.overlapLine {
		r.overlapLine = line
		bad("%s", msg)
	}
	r.checkSecrets(st, bad)
}

// checkSecrets: the secrets link points at a complete generation holding
// the deployed commit's value, and no crash leftover remains.
func (r *crashRun) checkSecrets(st crashState, bad func(string, ...any)) {
	got, err := os.ReadFile(filepath.Join(r.h.secretsLink(), "token"))
	if want := r.good[st.Deployed.Commit]; err != nil || string(got) != want {
		bad("the secrets link holds %q, %v; want %q, the value of the deployed %s", got, err, want, st.Deployed.Commit)
	}
	var left []string
	for _, pattern := range []string{filepath.Join(r.h.secretsRoot(), ".tmp-*"), r.h.secretsLink() + ".tmp-*",
		filepath.Join(r.h.stateDir(), ".state.json.tmp-*")} {
		m, _ := filepath.Glob(pattern)
		left = append(left, m...)
	}
	if len(left) > 0 {
		bad("crash leftovers remain: %q", left)
	}
}

// switchOverlap returns the line and a description of the last switch that
// began while another one ran, 0 when none did. "cut" lines (power cuts)
// end every switch that was running.
func switchOverlap(log string) (int, string) {
	b, _ := os.ReadFile(log)
	running, line, msg := 0, 0, ""
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		switch {
		case l == "cut":
			running = 0
		case strings.HasPrefix(l, "begin "):
			if running > 0 {
				line, msg = i+1, fmt.Sprintf("switch log line %d %q began while another switch ran", i+1, l)
			}
			running++
		case strings.HasPrefix(l, "end "):
			running--
		}
	}
	return line, msg
}

// report logs the counts per phase and signal, as aimed and as landed (the
// last phase the agent had entered at the injection), and fails on any
// violated invariant.
func (r *crashRun) report(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "| phase | %s | landed in phase (%s) |\n|---|---|---|---|---|\n", strings.Join(crashSignals, " | "), strings.Join(crashSignals, " / "))
	for _, p := range crashPhases {
		fmt.Fprintf(&b, "| %s |", p)
		var landed []string
		for _, s := range crashSignals {
			fmt.Fprintf(&b, " %d |", r.counts[[2]string{p, s}])
			landed = append(landed, fmt.Sprint(r.landed[[2]string{p, s}]))
		}
		fmt.Fprintf(&b, " %s |\n", strings.Join(landed, " / "))
	}
	t.Logf("%d injections, %d violated invariants\n%s", r.total(), len(r.violations), b.String())
	for i, v := range r.violations {
		if i == 20 {
			t.Errorf("… and %d more", len(r.violations)-20)
			break
		}
		t.Error(v)
	}
}
