package exitnode

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tailscale.com/client/local"
)

// TestImpostorWithSameHostNameNotApproved: a second tailnet device takes
// the exit node's host name and advertises exit routes too. While the API
// does not list the exit node's own key, nothing is approved; once it does,
// only the exit node is. The impostor never gets the routes.
func TestImpostorWithSameHostNameNotApproved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	control := startControl(t)
	authKey := writeSecret(t, "authkey", testAuthKey)
	impostor := startNode(t, control.HTTPTestServer.URL, "vps")
	ensure(t, ctx, &Manager{Local: impostor, LoginTimeout: 30 * time.Second, Config: Config{AuthKeyFile: authKey}})
	lc := startNode(t, control.HTTPTestServer.URL, "vps")
	// The API has not seen the exit node's key yet: it lists the impostor only.
	api := &fakeAPI{control: control, nodes: []*local.Client{lc, impostor}, hide: map[int]bool{0: true}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	m := &Manager{Local: lc, LoginTimeout: 30 * time.Second, Config: Config{
		AuthKeyFile: authKey, APIKeyFile: writeSecret(t, "apikey", "tskey-api-test"), Tailnet: "example.com", APIBaseURL: srv.URL,
	}}
	s, err := m.Ensure(ctx)
	if err == nil || !strings.Contains(err.Error(), "not proof of identity") || s.Approved {
		t.Fatalf("Ensure() with only a same-named impostor listed = %+v, %v; want no approval and the node-key error", s, err)
	}
	if !s.LoggedIn || !s.Advertised {
		t.Errorf("Ensure() = %+v; want logged in and advertising", s)
	}
	checkNotApproved(t, ctx, api, impostor, "n1")

	api.mu.Lock()
	delete(api.hide, 0)
	api.mu.Unlock() // the API now lists the exit node's key
	if s := ensure(t, ctx, m); !s.Approved {
		t.Fatalf("Ensure() with the node key listed = %+v; want approved", s)
	}
	if got := api.posted("n0"); len(got) != 2 {
		t.Errorf("routes posted for the exit node = %v; want the two exit routes", got)
	}
	// Once the approval has reached the exit node, the impostor's netmap,
	// sent by the same control, still allows it nothing.
	waitFor(t, ctx, "approval reaching the exit node", func() bool {
		st, err := lc.Status(ctx)
		return err == nil && approvedLocally(st)
	})
	checkNotApproved(t, ctx, api, impostor, "n1")
}

// checkNotApproved fails when routes were posted for device id or node's
// netmap lets it carry exit routes.
func checkNotApproved(t *testing.T, ctx context.Context, api *fakeAPI, node *local.Client, id string) {
	t.Helper()
	if got := api.posted(id); len(got) != 0 {
		t.Errorf("routes posted for the impostor %s: %v", id, got)
	}
	st, err := node.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if approvedLocally(st) {
		t.Errorf("the impostor's netmap allows exit routes: %v", st.Self.AllowedIPs)
	}
}
