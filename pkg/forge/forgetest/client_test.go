package forgetest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// checkClient runs pkg/forge's client against tg: what the reporter and
// the rollout gate rely on holds on the real forge as on the fake.
// commit gets 60 contexts; empty keeps none.
func (tg target) checkClient(t *testing.T, commit, empty string) {
	ctx := context.Background()
	ep, err := forge.ParseURL(tg.url)
	if err != nil {
		t.Fatal(err)
	}
	writer := &forge.Client{Endpoint: ep, Repository: tg.repo, Token: tg.token, UserAgent: "avalanche-agent/test"}
	reader := *writer
	reader.Token = tg.readOnly
	want := map[string]forge.State{}
	for i := range 60 { // more than one page of 50
		c := fmt.Sprintf("avalanche/host%02d", i)
		for _, st := range []forge.State{forge.Pending, []forge.State{forge.Success, forge.Failure, forge.Error}[i%3]} {
			if err := writer.CreateStatus(ctx, commit, forge.Status{State: st, Context: c, Description: string(st)}); err != nil {
				t.Fatalf("CreateStatus(%s, %s) = %v", c, st, err)
			}
			want[c] = st
		}
	}
	got, err := reader.Latest(ctx, commit)
	if err != nil {
		t.Fatalf("Latest = %v", err)
	}
	have := map[string]forge.State{}
	for _, s := range got {
		have[s.Context] = s.State
		if s.Created.IsZero() || s.Description != string(s.State) || s.ID%2 != 0 {
			t.Errorf("Latest: %+v; want its time, its own description and the id of its context's second status (even)", s)
		}
	}
	if diff := cmp.Diff(want, have); diff != "" || len(got) != 60 {
		t.Errorf("Latest gave %d statuses (-want +got):\n%s", len(got), diff)
	}
	if got, err := reader.Latest(ctx, empty); err != nil || len(got) != 0 {
		t.Errorf("Latest(a commit without statuses) = %v, %v; want none", got, err)
	}
	unknown := strings.Repeat("cd", 20)
	for _, tc := range []struct {
		name  string
		err   error
		class error
	}{
		{"CreateStatus(an unknown commit)", writer.CreateStatus(ctx, unknown, forge.Status{State: forge.Success, Context: "a"}), forge.ErrRejected},
		{"Latest(an unknown commit)", second(reader.Latest(ctx, unknown)), forge.ErrRejected},
		{"CreateStatus with a read-only token", reader.CreateStatus(ctx, empty, forge.Status{State: forge.Success, Context: "a"}), forge.ErrUnauthorized},
		{"Latest with a wrong token", second((&forge.Client{Endpoint: ep, Repository: tg.repo, Token: "wrong"}).Latest(ctx, commit)), forge.ErrUnauthorized},
		{"CreateStatus to an unknown repository", (&forge.Client{Endpoint: ep, Repository: "fleet/other", Token: tg.token}).CreateStatus(ctx, empty,
			forge.Status{State: forge.Success, Context: "a"}), forge.ErrRejected},
	} {
		if !errors.Is(tc.err, tc.class) {
			t.Errorf("%s = %v; want %v", tc.name, tc.err, tc.class)
		}
	}
}

func second[T any](_ T, err error) error { return err }
