package daemon_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// TestConcurrentSyncsMakeOnePass floods a busy daemon: every request that
// arrives during a pass waits for the next one, and they all share it.
func TestConcurrentSyncsMakeOnePass(t *testing.T) {
	h := newHost(t, nil)
	h.opts.BuildSleep = 3 * time.Second
	h.commit("slow build", nil)
	// A daemon process of its own, as in production: in this process its
	// server would compete for the scheduler with the thousand clients.
	h.startChild()
	busy := h.waitState(status.Building, 20*time.Second).Passes + 1 // the start-up pass, not finished yet

	const n = 1000
	results := make([]status.SyncResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = h.client().Sync(ctx, true, false)
		})
	}
	close(start)
	wg.Wait()

	byPass := map[uint64]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Sync #%d = %v", i, errs[i])
		}
		byPass[results[i].Pass]++
	}
	if len(byPass) != 1 {
		t.Fatalf("%d concurrent syncs got passes %v (pass: syncs) while pass %d ran; want one pass", n, byPass, busy)
	}
	for i := range n {
		if results[i] != results[0] {
			t.Fatalf("Sync #%d = %+v; want the same result as #0: %+v", i, results[i], results[0])
		}
	}
	if r := results[0]; r.Pass != busy+1 || r.Result != "unchanged" {
		t.Errorf("SyncResult = %+v; want pass %d, unchanged (pass %d deployed)", r, busy+1, busy)
	}
	if after := h.waitState(status.Idle, time.Minute).Passes; after != busy+1 {
		t.Errorf("%d concurrent syncs made %d passes after the running one; want 1", n, after-busy)
	}
}

// TestSyncBurstCoalesces sends syncs to an idle daemon 10ms apart, over
// twice the quiet period: they make one pass, not one each.
func TestSyncBurstCoalesces(t *testing.T) {
	h := newHost(t, nil)
	h.commit("first", nil)
	h.start()
	h.sync(false)
	h.waitState(status.Idle, 10*time.Second)
	time.Sleep(200 * time.Millisecond) // a pass the first sync's trigger queued
	before := h.status().Passes

	const n = 20
	results := make([]status.SyncResult, n)
	var wg sync.WaitGroup
	for i := range n {
		time.Sleep(10 * time.Millisecond)
		wg.Go(func() {
			r, err := h.client().Sync(context.Background(), true, false)
			if err != nil {
				r.Error = err.Error()
			}
			results[i] = r
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.Pass != before+1 || r.Error != "" {
			t.Errorf("Sync #%d = %+v; want pass %d like all the burst", i, r, before+1)
		}
	}
	if after := h.status().Passes; after != before+1 {
		t.Errorf("a burst of %d syncs made %d passes; want 1", n, after-before)
	}
}

func TestStatusShowsPushedCommitQuickly(t *testing.T) {
	h := newHost(t, nil)
	h.commit("first", nil)
	h.start()
	h.sync(false)

	pushed := h.commit("k8s only", map[string]string{"kubernetes/app.yaml": "kind: ConfigMap\n"})
	start := time.Now()
	h.triggerSync()
	for h.status().Fetched.Commit != pushed {
		if time.Since(start) > 3*time.Second {
			t.Fatalf("status never showed the pushed commit %s within 3s", pushed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("status showed the pushed commit %v after sync", time.Since(start))
}

func TestNewerCommitCancelsBuild(t *testing.T) {
	h := newHost(t, nil)
	first := h.commit("first", nil)
	h.start()
	h.sync(false)

	h.opts.BuildSleep = 20 * time.Second
	h.opts.Marker = "slow"
	slow := h.commit("slow build", nil)
	slowDone := make(chan status.SyncResult, 1)
	go func() {
		r, err := h.client().Sync(context.Background(), true, false)
		if err != nil {
			r.Error = err.Error()
		}
		slowDone <- r
	}()
	h.waitState(status.Building, 20*time.Second)

	h.opts.BuildSleep = 0
	h.opts.Marker = "fast"
	start := time.Now()
	fast := h.commit("fast build", nil)
	r := h.sync(false)
	took := time.Since(start)

	var rs status.SyncResult
	select {
	case rs = <-slowDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow build's pass did not end after the newer commit's pass")
	}
	if rs.OK || !strings.Contains(rs.Error, "superseded") {
		t.Errorf("slow commit's pass = %+v; want it cancelled as superseded", rs)
	}
	if r.Result != "deployed" || took > 12*time.Second {
		t.Errorf("newer commit's pass = %+v after %v; want deployed well before the 20s build", r, took)
	}
	t.Logf("newer commit deployed %v after its push", took)
	st := h.checkSettled(fast)
	if b := st.IsBad(slow); b != nil {
		t.Errorf("IsBad(superseded %s) = %+v; want nil: a superseded commit is not bad", slow, b)
	}
	if st.IsBad(first) != nil || st.LastError != nil {
		t.Errorf("state: bad %+v, last error %+v; want neither", st.Bad, st.LastError)
	}
}
