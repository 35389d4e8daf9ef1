package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// group is the hosts of one group sharing a fake Forgejo.
type group struct {
	fake   *forgetest.Server
	client *forge.Client
	anchor string
}

func newGroup(t *testing.T) *group {
	t.Helper()
	repo := gittest.NewRepo(t)
	anchor := repo.Commit(t, map[string]string{"flake.nix": "{}"}, "root")
	fake := forgetest.Start(t, "fleet/avalanche", repo.Dir, "s3cret")
	ep, err := forge.ParseURL(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &group{fake: fake, anchor: anchor,
		client: &forge.Client{Endpoint: ep, Repository: "fleet/avalanche", Token: "s3cret"}}
}

// ttl is the claims' time to live: the forge keeps whole seconds, so a
// claim may look up to a second older than it is.
const ttl = 4 * time.Second

func (g *group) host(name string, budget int) *lease.Lease {
	return &lease.Lease{Group: "k3s-server", Budget: budget, Host: name, Anchor: g.anchor, TTL: ttl,
		Read: g.client.Latest, Post: g.client.Create, Now: time.Now}
}

func take(t *testing.T, l *lease.Lease) lease.Claim {
	t.Helper()
	c, err := l.Take(context.Background(), "0123456789abcdef0123456789abcdef01234567")
	if err != nil {
		t.Fatalf("%s: Take = %v", l.Host, err)
	}
	return c
}

func held(t *testing.T, l *lease.Lease) bool {
	t.Helper()
	v, err := l.Check(context.Background())
	if err != nil {
		t.Fatalf("%s: Check = %v", l.Host, err)
	}
	return v.Held
}

// TestLease: the first claims hold, a renewal keeps its place, a release
// or an expiry frees the lease for the next claim, and an expired claim
// that is renewed late goes to the end of the queue.
func TestLease(t *testing.T) {
	g := newGroup(t)
	a, b, c := g.host("opi01", 1), g.host("opi02", 1), g.host("opi03", 1)
	ca, cb := take(t, a), take(t, b)
	if !held(t, a) || held(t, b) {
		t.Fatalf("after opi01 then opi02 claimed (seq %d, %d): opi01 held %v, opi02 held %v; want only opi01", ca.Seq, cb.Seq, held(t, a), held(t, b))
	}
	if r := take(t, a); r.Seq != ca.Seq || r.ID <= cb.ID || !held(t, a) || held(t, b) {
		t.Errorf("opi01's renewal = %+v; want its place %d kept (a new id after opi02's %d) and still the only holder", r, ca.Seq, cb.ID)
	}
	take(t, c)
	if err := a.Release(context.Background(), "0123456789ab"); err != nil {
		t.Fatal(err)
	}
	if !held(t, b) || held(t, c) {
		t.Errorf("after opi01 released: opi02 held %v, opi03 held %v; want opi02 (next in line) only", held(t, b), held(t, c))
	}
	// opi02 dies holding the lease: after its time to live, opi03 holds
	// it (opi03 renewed meanwhile, as a waiting agent does).
	time.Sleep(ttl / 2)
	take(t, c)
	time.Sleep(ttl/2 + ttl/8)
	if held(t, b) || !held(t, c) {
		t.Errorf("%v after opi02's last claim (ttl %v): opi02 held %v, opi03 held %v; want opi03", ttl+ttl/8, ttl, held(t, b), held(t, c))
	}
	// opi02 comes back: its expired claim does not keep its place.
	if r := take(t, b); r.Seq == cb.Seq || held(t, b) || !held(t, c) {
		t.Errorf("opi02's late renewal = %+v; want a new place behind opi03, which keeps the lease", r)
	}
}

// TestLeaseBudget: a budget of 2 lets the two first claims hold at once.
func TestLeaseBudget(t *testing.T) {
	g := newGroup(t)
	hosts := []*lease.Lease{g.host("raccoon01", 2), g.host("raccoon02", 2), g.host("raccoon03", 2)}
	for _, h := range hosts {
		take(t, h)
	}
	var got []bool
	for _, h := range hosts {
		got = append(got, held(t, h))
	}
	if !got[0] || !got[1] || got[2] {
		t.Errorf("held = %v with a budget of 2; want the two first claims", got)
	}
	v, _ := hosts[2].Check(context.Background())
	if len(v.Holders) != 2 || v.Holders[0].Host != "raccoon01" || v.Mine.Host != "raccoon03" {
		t.Errorf("raccoon03's view = %+v; want holders raccoon01, raccoon02 and its own claim", v)
	}
}

// TestLeaseForgeDown: a forge that cannot be reached is an error of the
// forge's class (ErrUnavailable: the agent retries), never a hold.
func TestLeaseForgeDown(t *testing.T) {
	g := newGroup(t)
	a := g.host("opi01", 1)
	g.fake.Stop()
	if _, err := a.Take(context.Background(), "0123456789ab"); !errors.Is(err, forge.ErrUnavailable) {
		t.Errorf("Take with the forge down = %v; want ErrUnavailable", err)
	}
	if v, err := a.Check(context.Background()); !errors.Is(err, forge.ErrUnavailable) || v.Held {
		t.Errorf("Check with the forge down = %+v, %v; want not held, ErrUnavailable", v, err)
	}
}

// TestJudgeIgnoresOthers: released claims, other groups and unreadable
// descriptions are not claims; a seq claimed above the status's own id is
// not believed.
func TestJudgeIgnoresOthers(t *testing.T) {
	now := time.Now()
	st := func(id int64, ctx string, state forge.State, desc string) forge.CommitStatus {
		return forge.CommitStatus{ID: id, Updated: now.Add(-time.Second), Status: forge.Status{State: state, Context: ctx, Description: desc}}
	}
	statuses := []forge.CommitStatus{
		st(1, "avalanche/lease/g/a", forge.Success, "released after x"),
		st(2, "avalanche/lease/other/b", forge.Pending, "lease ttl=1m0s for x"),
		st(3, "avalanche/lease/g/c", forge.Pending, "something else"),
		st(4, "avalanche/lease/g/d", forge.Pending, "lease ttl=1m0s seq=9 for x"),
		st(5, "avalanche/lease/g/e", forge.Pending, "lease ttl=1m0s for x"),
	}
	v := lease.Judge("g", 1, "e", statuses, now)
	if len(v.Holders) != 1 || v.Holders[0].Host != "d" || v.Holders[0].Seq != 4 || v.Held {
		t.Errorf("Judge = %+v; want d (its seq=9 above its id ignored: seq 4) holding, e waiting", v)
	}
}
