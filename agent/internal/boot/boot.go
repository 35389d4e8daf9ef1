// Package boot tells the time in a way that survives clock jumps: a boot
// identity and the time since that boot (CLOCK_BOOTTIME), which no wall
// clock correction moves. Deadlines written to disk use it, so a board
// without a real-time clock that boots in 1970 and then jumps to today
// neither expires nor stretches them.
package boot

import (
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Clock reads the boot identity and uptime. Its zero value reads the
// kernel's; tests set ID and Uptime.
type Clock struct {
	// ID returns an identity unique to this boot; default the kernel's
	// /proc/sys/kernel/random/boot_id.
	ID func() string
	// Uptime returns the time since boot; default CLOCK_BOOTTIME.
	Uptime func() time.Duration
}

// Instant is a point in time as this boot counts it.
type Instant struct {
	Boot   string        `json:"boot"`
	Uptime time.Duration `json:"uptime"`
}

// Now returns the current instant.
func (c Clock) Now() Instant {
	return Instant{Boot: c.bootID(), Uptime: c.uptime()}
}

// After returns the instant d from now.
func (c Clock) After(d time.Duration) Instant {
	n := c.Now()
	n.Uptime += d
	return n
}

// Remaining returns how long until deadline, and false when deadline was
// set during another boot (its remaining time is then unknowable).
func (c Clock) Remaining(deadline Instant) (time.Duration, bool) {
	n := c.Now()
	if deadline.Boot == "" || deadline.Boot != n.Boot {
		return 0, false
	}
	return deadline.Uptime - n.Uptime, true
}

// SameBoot reports whether i was taken during this boot.
func (c Clock) SameBoot(i Instant) bool { return i.Boot != "" && i.Boot == c.bootID() }

func (c Clock) bootID() string {
	if c.ID != nil {
		return c.ID()
	}
	return ID()
}

func (c Clock) uptime() time.Duration {
	if c.Uptime != nil {
		return c.Uptime()
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// ID returns the kernel's identity of the current boot, "" when unknown.
func ID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
