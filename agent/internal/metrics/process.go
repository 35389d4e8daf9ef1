package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of CPU times in /proc (USER_HZ), 100 on every
// architecture Linux runs the agent on.
const userHZ = 100

// process holds the process_* figures of one scrape, read from /proc. A
// source that could not be read leaves its families out.
type process struct {
	stat, limits, fds, net bool // which sources were read

	cpu, rss, vsize, start float64
	maxFDs, maxVM          float64
	openFDs                float64
	rx, tx                 float64
}

// readProcess reads the process figures; the error joins every source that
// failed.
func readProcess() (process, error) {
	var p process
	var errs []error
	for _, read := range []func(*process) error{readStat, readLimits, readFDs, readNetstat} {
		if err := read(&p); err != nil {
			errs = append(errs, err)
		}
	}
	return p, errors.Join(errs...)
}

// writeTo writes the process_* families that were read.
func (p process) writeTo(w *bytes.Buffer) {
	for _, f := range []struct {
		ok              bool
		name, typ, help string
		value           float64
	}{
		{p.stat, "process_cpu_seconds_total", typeCounter, "User and system CPU time spent, in seconds.", p.cpu},
		{p.limits, "process_max_fds", typeGauge, "Maximum number of open file descriptors.", p.maxFDs},
		{p.net, "process_network_receive_bytes_total", typeCounter, "Bytes received over the network (IP, the network namespace's total).", p.rx},
		{p.net, "process_network_transmit_bytes_total", typeCounter, "Bytes sent over the network (IP, the network namespace's total).", p.tx},
		{p.fds, "process_open_fds", typeGauge, "Number of open file descriptors.", p.openFDs},
		{p.stat, "process_resident_memory_bytes", typeGauge, "Resident memory size in bytes.", p.rss},
		{p.stat, "process_start_time_seconds", typeGauge, "When the process started, in Unix seconds.", p.start},
		{p.stat, "process_virtual_memory_bytes", typeGauge, "Virtual memory size in bytes.", p.vsize},
		{p.limits, "process_virtual_memory_max_bytes", typeGauge, "Maximum virtual memory size in bytes.", p.maxVM},
	} {
		if f.ok {
			writeOne(w, f.name, f.typ, f.help, f.value)
		}
	}
}

// readStat reads CPU time, memory and start time from /proc/self/stat.
func readStat(p *process) error {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return err
	}
	// Fields after the command name, which may hold spaces and parens;
	// f[0] is field 3 of proc(5).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return errors.New("reading /proc/self/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return fmt.Errorf("reading /proc/self/stat: %d fields", len(f))
	}
	n := func(field int) float64 {
		v, _ := strconv.ParseUint(f[field-3], 10, 64)
		return float64(v)
	}
	boot, err := bootTime()
	if err != nil {
		return err
	}
	p.cpu = (n(14) + n(15)) / userHZ
	p.start = boot + n(22)/userHZ
	p.vsize = n(23)
	p.rss = n(24) * float64(os.Getpagesize())
	p.stat = true
	return nil
}

// bootTime reads the boot time (btime) from /proc/stat, in Unix seconds.
func bootTime() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("reading /proc/stat: no btime")
}

// readLimits reads the soft limits on open files and address space.
func readLimits(p *process) error {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return err
	}
	found := 0
	for line := range strings.Lines(string(b)) {
		for name, dst := range map[string]*float64{"Max open files": &p.maxFDs, "Max address space": &p.maxVM} {
			if rest, ok := strings.CutPrefix(line, name); ok {
				*dst = limitValue(strings.Fields(rest))
				found++
			}
		}
	}
	if found != 2 {
		return errors.New("reading /proc/self/limits: limits missing")
	}
	p.limits = true
	return nil
}

// limitValue returns the soft limit of a limits line; "unlimited" is the
// largest 64-bit value, as the kernel stores it.
func limitValue(f []string) float64 {
	if len(f) == 0 {
		return 0
	}
	if f[0] == "unlimited" {
		return math.MaxUint64
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// readFDs counts the open file descriptors.
func readFDs(p *process) error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	p.openFDs = float64(len(names))
	p.fds = true
	return nil
}

// readNetstat reads the IP byte counters (IpExt InOctets and OutOctets).
func readNetstat(p *process) error {
	f, err := os.Open("/proc/self/net/netstat")
	if err != nil {
		return err
	}
	defer f.Close()
	var header []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "IpExt:" {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		for i := 1; i < len(fields) && i < len(header); i++ {
			v, _ := strconv.ParseFloat(fields[i], 64)
			switch header[i] {
			case "InOctets":
				p.rx = v
			case "OutOctets":
				p.tx = v
			}
		}
		p.net = true
		return nil
	}
	return errors.New("reading /proc/self/net/netstat: no IpExt counters")
}
