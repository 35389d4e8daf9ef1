package nspawntest

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// A reconcile loop that hangs (a failpoint build told to sleep at its first
// failpoint, the pass's fetch, with no hold on the watchdog) is killed by
// systemd's watchdog within one WatchdogSec of its last sign of progress.
// WatchdogSec is the module's, lowered to 4s for the test.
func TestSystemdWatchdogKillsAHungLoop(t *testing.T) {
	t.Parallel()
	h := NewHost(t, HostOptions{Name: "avalanche-watchdog", Tags: "failpoint",
		First:  nixtest.FlakeOptions{Marker: "never deployed"},
		NixOS:  `systemd.services.avalanche-agent.serviceConfig.WatchdogSec = lib.mkForce "4s";`,
		DropIn: "Environment=AVALANCHE_FAILPOINT_DELAY=1h"})
	re := regexp.MustCompile(`(?m)^([0-9.]+) .*Watchdog timeout`)
	deadline := time.Now().Add(90 * time.Second)
	var journal string
	for !re.MatchString(journal) {
		if time.Now().After(deadline) {
			t.Fatalf("no watchdog timeout within 90s:\n%s", journal)
		}
		time.Sleep(500 * time.Millisecond)
		journal = h.Journal(t, "-o", "short-unix", "-u", "avalanche-agent")
	}
	fired, _ := strconv.ParseFloat(re.FindStringSubmatch(journal)[1], 64)
	hung := regexp.MustCompile(`failpoint: [a-z-]+ ([0-9]+)`).FindStringSubmatch(journal)
	if hung == nil {
		t.Fatalf("the loop never reached a failpoint:\n%s", journal)
	}
	ns, _ := strconv.ParseInt(hung[1], 10, 64)
	after := time.Duration(fired*1e9 - float64(ns))
	t.Logf("watchdog fired %s after the loop hung (WatchdogSec=4s)", after.Round(time.Millisecond))
	if after > 5*time.Second {
		t.Errorf("the watchdog fired %s after the hang; want within one WatchdogSec (4s) and a second of slack", after)
	}
}
