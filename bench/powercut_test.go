package bench

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// The power-cut tier (issue 29): the crash suite's power cut kills
// processes, and the page cache survives it; here the agent runs in a
// QEMU guest (vm_test.go) with real Nix, and each cut kills QEMU, so what
// the guest had not flushed is gone. Cuts land at random instants of every
// phase, of recovery itself, and just after a deployment finished. After
// each cut the guest boots again, the agent settles on its own, and the
// crash suite's invariants are checked, plus: the running system's
// closure verifies against Nix's recorded hashes, the secrets are the
// deployed commit's, and the agent's own files are whole.
var cutPhases = []string{"fetch", "evaluate", "build", "secrets", "profile", "activate", "confirm", "rollback", "recovery", "after"}

// shortCutPhases are the short form's 8 cuts: the phases that write to the
// store, the profile or the agent's files (fetch and profile are left to
// the full form: the crash suite covers them, and their writes are small).
var shortCutPhases = []string{"evaluate", "build", "secrets", "activate", "confirm", "rollback", "recovery", "after"}

// afterWindow is how long after a deployment finished a cut may land:
// ext4 commits its journal every 5 s.
const afterWindow = 7 * time.Second

// cutRun is one run of the tier.
type cutRun struct {
	t          *testing.T
	vm         *vm
	up         *nixtest.Repo
	key        secretstest.AgeKey
	opts       nixtest.FlakeOptions
	good       map[string]string // good commits → their secret
	bad        map[string]bool
	head       string
	n          int
	work       map[string]time.Duration // phase → duration measured in the guest
	cuts       map[string]int
	violations []string
	firstFail  int        // the cut after which an invariant first failed, 0: none
	builder    *vmBuilder // builder mode: the builder on the test machine, nil otherwise
	// overlapLine is the switch log line of the last overlap reported.
	overlapLine int
}

// TestReliabilityPowerCut: 8 cuts (shortCutPhases); AVALANCHE_BENCH_FULL=1
// makes it 20 rounds of every phase (200 cuts), AVALANCHE_CUT_ROUNDS=n n
// rounds of every phase.
func TestReliabilityPowerCut(t *testing.T) {
	rounds, phases := 1, shortCutPhases
	if fullRun() {
		rounds, phases = 20, cutPhases
	}
	if n := os.Getenv("AVALANCHE_CUT_ROUNDS"); n != "" {
		fmt.Sscan(n, &rounds)
		phases = cutPhases
	}
	newCutRun(t, false).run(rounds, phases)
}

// run deploys twice (the second one measures the phases), then cuts the
// power in each phase, rounds times.
func (r *cutRun) run(rounds int, phases []string) {
	start := time.Now()
	r.vm.boot()
	r.t.Logf("image built and guest booted in %s", time.Since(start).Round(time.Millisecond))
	r.deploy(false)
	r.settle("first deployment")
	r.check("first deployment")
	from := r.vm.consoleSize()
	t0 := time.Now()
	r.deploy(false)
	r.settle("calibration")
	r.calibrate(from)
	r.t.Logf("a deployment in the guest: %s; phases %v", time.Since(t0).Round(time.Millisecond), r.work)
	for round := 0; round < rounds; round++ {
		for _, phase := range phases {
			r.inject(phase)
		}
	}
	r.report(time.Since(start))
}

// newCutRun prepares the guest: local evaluation, or with builder set
// builder mode (powercut_builder_test.go).
func newCutRun(t *testing.T, builder bool) *cutRun {
	nixtest.Require(t)
	dir := t.TempDir()
	kernel, version := vmKernel(t)
	r := &cutRun{t: t, up: nixtest.NewRepo(t, "main"), key: secretstest.NewAgeKey(t), good: map[string]string{}, bad: map[string]bool{},
		work: map[string]time.Duration{}, cuts: map[string]int{}}
	r.opts = nixtest.FlakeOptions{Name: hostName, CurrentSystemLink: "/run/current-system", SwitchLog: "/var/log/avalanche-switch.log",
		ActivationLog: "/var/log/avalanche-activations.log", SecretsManifest: secretsManifest, Deps: 2}
	server := gittest.StartHTTPServer(t, r.up.Bare, "")
	agent := buildAgent(t, "failpoint")
	cfg := guestConfig(server.URL)
	files := map[string]string{
		"/avalanche/avalanche-agent":   agent,
		"/avalanche/avalanche-decrypt": filepath.Join(filepath.Dir(agent), "avalanche-decrypt"),
		"/avalanche/age.key":           r.key.File,
		"/avalanche/init":              writeTemp(t, dir, "init", guestInit, 0o755),
		"/avalanche/check":             writeTemp(t, dir, "check", guestCheck, 0o755),
		"/avalanche/forge-token":       writeTemp(t, dir, "forge-token", "never-sent\n", 0o600),
	}
	if builder {
		r.builder = newVMBuilder(t, r, server.URL, cfg, files)
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	files["/avalanche/config.json"] = writeTemp(t, dir, "config.json", string(b), 0o600)
	r.vm = &vm{t: t, dir: dir, kernel: kernel, initrd: vmInitramfs(t, version), disk: vmDisk(t, dir, files),
		console: filepath.Join(dir, "console.log"), ctlPath: filepath.Join(dir, "ctl.sock")}
	t.Cleanup(func() {
		r.vm.cut()
		if t.Failed() {
			t.Logf("console tail:\n%s", r.vm.consoleTail())
		}
	})
	return r
}

// guestConfig is the agent's config in the guest, as on a NixOS host.
func guestConfig(url string) map[string]any {
	url = strings.Replace(url, "127.0.0.1", "10.0.2.2", 1) // the host, from the guest
	c := map[string]any{
		"version": 1, "hostname": hostName, "pollInterval": "1h",
		"repository": map[string]any{"url": url, "fetchTimeout": "60s"},
		"stateDir":   "/var/lib/avalanche-agent", "runtimeDir": "/run/avalanche-agent",
		"deploy": map[string]any{"profile": "/nix/var/nix/profiles/system", "currentSystem": "/run/current-system",
			"bootedSystem": "/run/booted-system", "systemdRun": false, "confirmTimeout": "30s", "nixArgs": nixtest.Args(),
			"healthChecks": []string{"! grep -q bad /run/current-system/marker"}},
		"secrets": map[string]any{"dir": "/run/secrets", "ageKeyFiles": []string{"/avalanche/age.key"},
			"helper": "/avalanche/avalanche-decrypt"},
		// A forge nobody answers on the guest's loopback: every deployment
		// event stays in the report queue, which is rewritten at each one,
		// so the cuts land on it too.
		"report": map[string]any{"forge": map[string]any{"url": "http://127.0.0.1:9", "tokenFile": "/avalanche/forge-token",
			"repository": "fleet/avalanche"}},
	}
	return c
}

func writeTemp(t testing.TB, dir, name, content string, mode os.FileMode) string {
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, []byte(content), mode))
	return p
}

// deploy pushes the next commit (bad: one that fails its health check
// after switching) and asks the guest's agent to poll.
func (r *cutRun) deploy(bad bool) {
	r.n++
	r.opts.Marker = fmt.Sprintf("v%d", r.n)
	if bad {
		r.opts.Marker = fmt.Sprintf("bad-%d", r.n)
	}
	value := fmt.Sprintf("secret-%d", r.n)
	r.up.WriteFile(r.t, "secrets/token.yaml", string(secretstest.Encrypt(r.t, "yaml", "token: "+value+"\n", r.key.Recipient)))
	if r.builder != nil {
		r.head = r.builder.commit(fmt.Sprintf("commit %d", r.n))
	} else {
		r.head = r.up.WriteFlake(r.t, r.opts, fmt.Sprintf("commit %d", r.n))
	}
	if bad {
		r.bad[r.head] = true
	} else {
		r.good[r.head] = value
	}
	if _, err := r.vm.call("sync", 30*time.Second); err != nil {
		r.t.Fatalf("asking the guest to sync: %v", err)
	}
}

// inject cuts the power at a random instant of phase, boots the guest
// again, lets the agent settle and checks the invariants.
func (r *cutRun) inject(phase string) {
	what := fmt.Sprintf("cut %d (%s)", r.total()+1, phase)
	r.deploy(phase == "rollback")
	from := r.vm.consoleSize()
	switch phase {
	case "after":
		r.settle(what)
		time.Sleep(rand.N(afterWindow))
	case "recovery":
		if r.waitFailpoint(what, "activate", from) {
			time.Sleep(rand.N(r.work["activate"] + time.Millisecond))
		}
		r.vm.cut()
		from = r.vm.consoleSize()
		r.vm.boot()
		if g, err := r.status(); err == nil && g.journalLen == 0 {
			// The activation took less than its calibrated time and the
			// first cut came after the deployment ended: no flight is
			// open, so the start-up is what gets cut.
			r.t.Logf("%s: the first cut came after the deployment ended; nothing to recover, cutting the start-up", what)
			time.Sleep(rand.N(r.work["recovery"] + time.Millisecond))
			break
		}
		if r.waitFailpoint(what, phase, from) {
			time.Sleep(rand.N(r.work[phase] + time.Millisecond))
		}
	default:
		if r.waitFailpoint(what, phase, from) {
			time.Sleep(rand.N(r.work[phase] + time.Millisecond))
		}
	}
	landed := r.landed(from)
	if phase == "recovery" && landed != "none" {
		landed = "recovery" // its rollback or confirm is part of it
	}
	r.vm.cut()
	r.cuts[phase]++
	t0 := time.Now()
	r.vm.boot()
	r.settle(what)
	settled := time.Since(t0)
	n := len(r.violations)
	r.check(what)
	r.t.Logf("%s: landed in %s; booted and settled in %s; %d new violations", what, landed, settled.Round(time.Second), len(r.violations)-n)
	for _, v := range r.violations[n:] {
		r.t.Logf("  %s", v)
	}
}

// landed is the last failpoint the agent passed before the cut.
func (r *cutRun) landed(from int64) string {
	fps := r.guestFailpoints(from)
	if len(fps) == 0 {
		return "none"
	}
	return fps[len(fps)-1].name
}

func (r *cutRun) total() int {
	n := 0
	for _, c := range r.cuts {
		n += c
	}
	return n
}

// guestFailpoints returns the failpoints on the console after offset, with
// the guest's clock.
func (r *cutRun) guestFailpoints(from int64) []failpoint {
	b, _ := os.ReadFile(r.vm.console)
	if int64(len(b)) < from {
		return nil
	}
	var fps []failpoint
	sc := bufio.NewScanner(strings.NewReader(string(b[from:])))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "failpoint: "); i >= 0 {
			var fp failpoint
			var ns int64
			if _, err := fmt.Sscanf(line[i:], "failpoint: %s %d", &fp.name, &ns); err == nil {
				fp.at = time.Unix(0, ns)
				fps = append(fps, fp)
			}
		}
	}
	return fps
}

// calibrate measures each phase of a deployment, failpoint to failpoint.
func (r *cutRun) calibrate(from int64) {
	fps := r.guestFailpoints(from)
	for i := 0; i+1 < len(fps); i++ {
		r.work[fps[i].name] = max(fps[i+1].at.Sub(fps[i].at), 5*time.Millisecond)
	}
	if r.work["confirm"] == 0 {
		r.work["confirm"] = time.Second // the last failpoint: until the end is journaled
	}
	for _, p := range []string{"rollback", "recovery"} {
		if r.work[p] == 0 {
			r.work[p] = r.work["activate"] + r.work["confirm"]
		}
	}
}

// waitFailpoint waits until the agent passed the failpoint name. It
// returns false when the guest ended on its own first (QEMU exited: a
// guest kernel panic under TCG on a loaded machine, say): that is a power
// cut nobody aimed, and the caller checks the invariants after it all
// the same.
func (r *cutRun) waitFailpoint(what, name string, from int64) bool {
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		for _, fp := range r.guestFailpoints(from) {
			if fp.name == name {
				return true
			}
		}
		select {
		case <-r.vm.done:
			r.t.Logf("%s: the guest ended on its own before %s; its console:\n%s", what, name, tailFile(r.vm.console, 3000))
			return false
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: the agent never reached %s\n%s", what, name, r.vm.consoleTail())
		}
	}
}

// guestState is what the tier reads of the agent's status and state file.
type guestState struct {
	status     agentStatus
	state      crashState
	stateErr   error
	journalLen int
}

func (r *cutRun) status() (guestState, error) {
	var g guestState
	out, err := r.vm.call("status", 30*time.Second)
	if err != nil {
		return g, err
	}
	parts := strings.SplitN(out, "@@", 3)
	if len(parts) != 3 {
		return g, fmt.Errorf("status answer %q", out)
	}
	if err := json.Unmarshal([]byte(parts[0]), &g.status); err != nil {
		return g, fmt.Errorf("status %q: %w", parts[0], err)
	}
	g.stateErr = json.Unmarshal([]byte(parts[1]), &g.state)
	g.journalLen = -1
	fmt.Sscan(strings.TrimSpace(parts[2]), &g.journalLen)
	return g, nil
}

// settle waits until the agent finished recovering and deploying what
// main holds: the head deployed when it is good, refused when bad.
func (r *cutRun) settle(what string) {
	var last guestState
	var lastErr error
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		g, err := r.status()
		last, lastErr = g, err
		st := g.state
		if err == nil && g.stateErr == nil && g.status.Passes >= 1 && (g.status.State == "idle" || g.status.State == "failed") &&
			g.journalLen == 0 && st.Deployed != nil && (st.Deployed.Commit == r.head || st.isBad(r.head)) {
			return
		}
	}
	r.t.Fatalf("%s: the agent never settled: %+v, %v\n%s", what, last, lastErr, r.vm.consoleTail())
}

// check records every invariant that does not hold.
func (r *cutRun) check(what string) {
	n := len(r.violations)
	defer func() {
		if len(r.violations) > n && r.firstFail == 0 {
			r.firstFail = r.total()
		}
	}()
	bad := func(format string, a ...any) {
		r.violations = append(r.violations, what+": "+fmt.Sprintf(format, a...))
	}
	out, err := r.vm.call("check", 3*time.Minute)
	if err != nil {
		bad("checking: %v", err)
		return
	}
	c := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			c[k] = v
		}
	}
	dec := func(k string) string { b, _ := base64.StdEncoding.DecodeString(c[k]); return string(b) }
	var st crashState
	if err := json.Unmarshal([]byte(dec("state")), &st); err != nil {
		bad("state.json is damaged: %v", err)
		return
	}
	for i, l := range strings.Split(strings.TrimSpace(dec("journal")), "\n") {
		if l != "" && !json.Valid([]byte(l)) {
			bad("journal line %d is damaged: %q", i+1, l)
		}
	}
	if q := dec("queue"); q != "" && !json.Valid([]byte(q)) {
		bad("the report queue is damaged: %q", q)
	}
	if c["queueaside"] != "" {
		bad("the report queue was found unreadable and moved aside: %s", c["queueaside"])
	}
	if c["gitfsck"] != "ok" {
		bad("the git copy is damaged: %s", dec("gitfsck"))
	}
	if c["verify"] != "ok" {
		bad("the running system's closure does not verify: %s", dec("verify"))
	}
	if st.Deployed == nil || st.Deployed.StorePath != c["running"] {
		bad("the state names %+v; the host runs %s", st.Deployed, c["running"])
		return
	}
	if len(st.Drift) > 0 && string(st.Drift) != "null" {
		bad("drift reported: %s", st.Drift)
	}
	for _, b := range st.Bad {
		if !r.bad[b.Commit] {
			bad("good commit %s refused (%s: %s)", b.Commit, b.Phase, b.Reason)
		}
	}
	if _, ok := r.good[r.head]; ok && st.Deployed.Commit != r.head {
		bad("the good head %s is not deployed (deployed %s)", r.head, st.Deployed.Commit)
	}
	if r.bad[r.head] && !st.isBad(r.head) {
		bad("the unhealthy head %s is not refused", r.head)
	}
	if want := r.good[st.Deployed.Commit]; dec("secret") != want {
		bad("the secrets link holds %q; want %q, the value of the deployed %s", dec("secret"), want, st.Deployed.Commit)
	}
	if c["leftovers"] != "" {
		bad("crash leftovers remain: %s", c["leftovers"])
	}
	log := filepath.Join(r.vm.dir, "switch.log")
	os.WriteFile(log, []byte(dec("switchlog")), 0o644)
	if line, msg := switchOverlap(log); line > r.overlapLine {
		r.overlapLine = line
		bad("%s", msg)
	}
}

// report logs the cuts per phase and fails on any violated invariant.
func (r *cutRun) report(d time.Duration) {
	var b strings.Builder
	for _, p := range cutPhases {
		fmt.Fprintf(&b, "%s %d, ", p, r.cuts[p])
	}
	r.t.Logf("%d cuts in %s (%s per cut), %d violated invariants; first after cut %d\n%s", r.total(), d.Round(time.Second),
		(d / time.Duration(max(r.total(), 1))).Round(time.Second), len(r.violations), r.firstFail, b.String())
	for i, v := range r.violations {
		if i == 20 {
			r.t.Errorf("… and %d more", len(r.violations)-20)
			break
		}
		r.t.Error(v)
	}
}
