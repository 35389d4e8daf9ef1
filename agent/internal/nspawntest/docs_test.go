package nspawntest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// switchOutput is what the documented rollout's switch-to-configuration prints.
const switchOutput = "switch-to-configuration: starting the new units"

// docCheck is what a documented command must show, keyed by the comment
// above it in docs/observability.md.
type docCheck func(t *testing.T, out string)

func contains(subs ...string) docCheck {
	return func(t *testing.T, out string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(out, s) {
				t.Errorf("output lacks %q:\n%s", s, out)
			}
		}
	}
}

// testDocumentedCommands runs every journalctl command of the Journal
// section of docs/observability.md, and the systemctl commands it names,
// inside the container after a rollout of a commit whose switch prints a
// line; earlier subtests left rollbacks and interruptions in the journal.
func testDocumentedCommands(t *testing.T, h *Host) {
	c := h.Commit(t, nixtest.FlakeOptions{Marker: "documented", SwitchCommand: "echo '" + switchOutput + "'"}, "a documented rollout")
	h.Agent(t, "sync", "--wait")
	st := h.Deployed(t, c, time.Minute)
	n := strconv.FormatUint(st.Deployed.Flight, 10)
	time.Sleep(time.Second) // journald's writes
	checks := map[string]docCheck{
		"One rollout: the agent's lines and what switch-to-configuration printed":   contains("deploying", "evaluated", "built", "switching in avalanche-switch-"+n, switchOutput, "activated", "healthy", "deployment confirmed"),
		"The agent's lines only, with every field (phases, durations, store paths)": contains(`"AVALANCHE_PHASE" : "build"`, `"AVALANCHE_DURATION_MS"`, `"AVALANCHE_DEPLOYMENT_MS"`, `"AVALANCHE_STORE_PATH"`),
		"One line per event with just the interesting fields":                       contains("build\t\t", "\t"+c+"\tbuilt", "confirm\tdeployed\t"),
		"What one switch printed":                                      contains(switchOutput),
		"Deployments that failed or were rolled back, since yesterday": contains("rolled back"),
		"Deployments cut short with no verdict (tried again)":          contains("deployment interrupted"),
		"Which commits this host has ever dealt with":                  contains(c),
		"Slowest builds: duration in ms and commit":                    slowest,
	}
	doc, err := os.ReadFile(filepath.Join(RepoRoot(t), "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)[strings.Index(string(doc), "## Journal"):strings.Index(string(doc), "## Metrics")]
	block := section[strings.Index(section, "```sh")+5:]
	block = block[:strings.Index(block, "```")]
	var comment string
	ran := 0
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.HasPrefix(line, "# "):
			comment = strings.TrimPrefix(line, "# ")
		case strings.HasPrefix(line, "journalctl"):
			check, ok := checks[comment]
			if !ok {
				t.Errorf("docs/observability.md: no check for %q (%s): add one here", comment, line)
				continue
			}
			cmd := strings.NewReplacer("<sha>", c, "<N>", n).Replace(line)
			t.Run(comment, func(t *testing.T) { check(t, h.shell(t, cmd)) })
			ran++
		}
	}
	if ran != len(checks) {
		t.Errorf("ran %d documented journalctl commands; the checks expect %d", ran, len(checks))
	}
	for cmd, check := range map[string]docCheck{
		"systemctl show -p StatusText --value avalanche-agent": contains("idle: deployed " + c[:12]),
		"systemctl status avalanche-agent":                     contains("Status: \"idle: deployed " + c[:12]),
		"journalctl -f AVALANCHE_COMMIT=<sha>":                 nil,
	} {
		if !strings.Contains(string(doc), "`"+cmd+"`") {
			t.Errorf("docs/observability.md no longer names `%s`: update the test", cmd)
		}
		if check != nil {
			t.Run(cmd, func(t *testing.T) { check(t, h.shell(t, cmd)) })
		}
	}
}

// slowest checks the slowest-builds query: up to ten lines of a duration
// and a commit, slowest last.
func slowest(t *testing.T, out string) {
	t.Helper()
	line := regexp.MustCompile(`^([0-9.]+)\t[0-9a-f]{40}$`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	prev := -1.0
	for _, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not <duration ms>\t<commit>:\n%s", l, out)
		}
		ms, _ := strconv.ParseFloat(m[1], 64)
		if ms < prev {
			t.Errorf("not sorted, slowest last:\n%s", out)
		}
		prev = ms
	}
	if len(lines) > 10 {
		t.Errorf("%d lines; want at most 10:\n%s", len(lines), out)
	}
}

// shell runs a documented command line: its first command in the
// container, the rest of a pipeline (jq, sort) on the host, as an operator
// with jq would.
func (h *Host) shell(t *testing.T, line string) string {
	t.Helper()
	first, rest, piped := strings.Cut(line, " | ")
	out, err := h.Run(t, "sh", "-c", first+" --no-pager")
	if err != nil && !strings.Contains(first, "status") { // systemctl status exits 3 for inactive units
		t.Fatalf("%s: %v\n%s", first, err, out)
	}
	if !piped {
		return out
	}
	cmd := exec.Command("sh", "-c", rest)
	cmd.Stdin = strings.NewReader(out)
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s (on the host): %v", rest, err)
	}
	return string(res)
}
