package bench

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// treeSampler follows the resident memory of a process and all its
// descendants (an agent and the nix commands it runs) by reading /proc
// every interval, and keeps the peak of their sum.
type treeSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak int64 // bytes
}

// sampleTree starts sampling the tree rooted at pid.
func sampleTree(pid int, interval time.Duration) *treeSampler {
	s := &treeSampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.peak = max(s.peak, treeRSS(pid))
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peak in bytes.
func (s *treeSampler) Stop() int64 {
	close(s.stop)
	s.done.Wait()
	return s.peak
}

// treeRSS sums the resident set of pid and its descendants, in bytes.
func treeRSS(pid int) int64 {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppid(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	var sum int64
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], children[p]...)
		sum += rss(p)
	}
	return sum
}

// ppid reads the parent of p from /proc/p/stat; 0 when p is gone.
func ppid(p int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(fields[1])
	return n
}

// rss returns p's resident set in bytes from /proc/p/statm.
func rss(p int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
