package forge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// TestLatest reads back the latest status of each context, across pages
// (Forgejo gives at most 50 a page), with a read-only token.
func TestLatest(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	want := map[string]forge.State{}
	for i := range 60 {
		c := fmt.Sprintf("avalanche/host%02d", i)
		for _, st := range []forge.State{forge.Pending, forge.Success} {
			if i%7 == 0 && st == forge.Success {
				st = forge.Failure
			}
			if err := w.client.CreateStatus(ctx, w.commit, forge.Status{State: st, Context: c, Description: string(st)}); err != nil {
				t.Fatal(err)
			}
			want[c] = st
		}
	}
	reader := *w.client
	reader.Token = w.fake.ReadOnlyToken()
	got, err := reader.Latest(ctx, w.commit)
	if err != nil {
		t.Fatalf("Latest = %v", err)
	}
	have := map[string]forge.State{}
	for _, s := range got {
		if _, dup := have[s.Context]; dup {
			t.Errorf("Latest returned context %s twice", s.Context)
		}
		have[s.Context] = s.State
		if s.Created.IsZero() || s.Description != string(s.State) {
			t.Errorf("Latest: %+v; want its created_at and its own description", s)
		}
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("Latest states (-want +got):\n%s", diff)
	}
	if got, err := reader.Latest(ctx, w.bare); err != nil || len(got) != 0 {
		t.Errorf("Latest(a commit without statuses) = %v, %v; want none, no error", got, err)
	}
	// Gitea answers 404 for a commit it does not have (Forgejo's source an
	// empty 200); the rollout gate waits either way.
	if got, err := reader.Latest(ctx, strings.Repeat("0", 40)); !errors.Is(err, forge.ErrRejected) || len(got) != 0 {
		t.Errorf("Latest(an unknown commit) = %v, %v; want ErrRejected", got, err)
	}
	reader.Token = "wrong"
	if _, err := reader.Latest(ctx, w.commit); !errors.Is(err, forge.ErrUnauthorized) {
		t.Errorf("Latest with a wrong token = %v; want ErrUnauthorized", err)
	}
	w.fake.Stop()
	if _, err := w.client.Latest(ctx, w.commit); !errors.Is(err, forge.ErrUnavailable) {
		t.Errorf("Latest with the forge down = %v; want ErrUnavailable", err)
	}
}
