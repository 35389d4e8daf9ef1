package daemon_test

import (
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// A push over repository.maxObjectSize is refused as that commit's fault
// before anything is inflated; the agent keeps running, does not fetch it
// again, and deploys the next commit that leaves it out.
func TestPushOverFetchLimitIsRefused(t *testing.T) {
	h := newHost(t, func(c map[string]any) {
		c["repository"].(map[string]any)["maxObjectSize"] = 1 << 20
	})
	h.commit("good", nil)
	h.start()
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", (4<<20)/64)
	big := h.commit("two big files", map[string]string{"big/0.bin": body + "0\n", "big/1.bin": body + "1\n"})

	r := h.sync(false)
	if r.OK || !strings.Contains(r.Error, "maxObjectSize") || !strings.Contains(r.Error, `"main"`) {
		t.Fatalf("sync of the big push = %+v; want refused over maxObjectSize on main", r)
	}
	if st := h.state(); st.IsBad(big) == nil {
		t.Errorf("state does not mark %s bad", big)
	}
	h.server.Reset()
	if r := h.sync(false); r.OK {
		t.Errorf("second sync = %+v; want still refused", r)
	}
	if n := h.server.Started("POST"); n != 0 {
		t.Errorf("the refused push was fetched again: %d POSTs", n)
	}

	nixtest.Git(t, h.up.Work, "reset", "--quiet", "--hard", "HEAD~1")
	h.opts.Marker = "v2"
	next := h.commit("small again", nil)
	if r := h.sync(false); !r.OK {
		t.Fatalf("sync of %s = %+v; want deployed", next, r)
	}
	if s := h.status(); s.Deployed == nil || s.Deployed.Commit != next {
		t.Errorf("deployed = %+v; want %s", s.Deployed, next)
	}
}
