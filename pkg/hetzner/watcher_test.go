package hetzner

import (
	"context"
	"net/netip"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/hetzner/hetznertest"
	"github.com/avalanche-fleet/avalanche/pkg/homeip"
)

// TestWatcherWithFake drives homeip.Watcher against the fake API: one
// set_rules call per agreed change, none for flaps or failed writes.
func TestWatcherWithFake(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	provision(t, c, testSpec())
	w := &homeip.Watcher{Firewall: HomeIPFirewall{Client: c}}
	ctx := context.Background()
	f.ResetCalls()
	for _, ip := range []string{homeA.String(), homeA.String(), homeB.String()} {
		if changed, err := w.Observe(ctx, netipMust(ip)); err != nil || changed {
			t.Fatalf("Observe(%s) = %t, %v; want no change yet", ip, changed, err)
		}
	}
	if m := f.Mutations(); len(m) != 0 {
		t.Fatalf("mutations before agreement = %v", m)
	}
	f.AddFault(hetznertest.Fault{Method: "POST", Status: 500, Times: 1})
	if _, err := w.Observe(ctx, homeB); err == nil {
		t.Fatalf("Observe() with API down = nil error")
	}
	checkRules(t, f, homeA)
	if changed, err := w.Observe(ctx, homeB); err != nil || !changed {
		t.Fatalf("Observe(%s) after recovery = %t, %v; want written", homeB, changed, err)
	}
	checkRules(t, f, homeB)
	if n := len(f.Mutations()); n != 2 {
		t.Errorf("mutations = %v; want the failed and the successful set_rules", f.Mutations())
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
