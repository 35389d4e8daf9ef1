package rebuild

import (
	"fmt"
	"os"
)

// UnitResult is how a systemd unit ended, as systemd tells its
// ExecStopPost= command ($SERVICE_RESULT, $EXIT_CODE, $EXIT_STATUS).
type UnitResult struct {
	// Result is success, exit-code, signal, core-dump, timeout, watchdog,
	// resources... (systemd.exec(5), $SERVICE_RESULT).
	Result string `json:"result"`
	// Code is exited, killed or dumped; Status the exit status or signal name.
	Code   string `json:"code,omitempty"`
	Status string `json:"status,omitempty"`
	// BootID is the boot the unit ended in.
	BootID string `json:"bootID,omitempty"`
}

// UnitResultFromEnv reads the result systemd gives an ExecStopPost= command.
func UnitResultFromEnv() UnitResult {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return UnitResult{Result: os.Getenv("SERVICE_RESULT"), Code: os.Getenv("EXIT_CODE"),
		Status: os.Getenv("EXIT_STATUS"), BootID: string(trimNL(boot))}
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// Failed reports whether the unit's own process failed: it exited
// non-zero or outran its time limit. A unit killed by a signal (a shutdown
// stopping it, the OOM killer) did not fail on its own.
func (r UnitResult) Failed() bool {
	return r.Result == "exit-code" || r.Result == "timeout"
}

func (r UnitResult) String() string {
	s := "result " + r.Result
	if r.Code != "" {
		s += fmt.Sprintf(" (%s, status %s)", r.Code, r.Status)
	}
	return s
}
