package forge_test

import (
	"context"
	"errors"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// TestCreate returns the status as the forge recorded it, with ids that
// grow (the disruption budget's lease orders claims by them), and errors
// of CreateStatus's classes.
func TestCreate(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var last int64
	for _, c := range []string{"avalanche/lease/g/a", "avalanche/lease/g/b", "avalanche/lease/g/a"} {
		got, err := w.client.Create(ctx, w.commit, forge.Status{State: forge.Pending, Context: c, Description: "lease ttl=1m0s for x"})
		if err != nil {
			t.Fatalf("Create(%s) = %v", c, err)
		}
		if got.ID <= last || got.Context != c || got.State != forge.Pending || got.Created.IsZero() {
			t.Errorf("Create(%s) = %+v; want an id above %d, its context, pending, when it was recorded", c, got, last)
		}
		last = got.ID
	}
	w.fake.Fail(503)
	if _, err := w.client.Create(ctx, w.commit, forge.Status{State: forge.Pending, Context: "x"}); !errors.Is(err, forge.ErrUnavailable) {
		t.Errorf("Create answered 503 = %v; want ErrUnavailable", err)
	}
	ro := *w.client
	ro.Token = w.fake.ReadOnlyToken()
	if _, err := ro.Create(ctx, w.commit, forge.Status{State: forge.Pending, Context: "x"}); !errors.Is(err, forge.ErrUnauthorized) {
		t.Errorf("Create with a read-only token = %v; want ErrUnauthorized", err)
	}
}
