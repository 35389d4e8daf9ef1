package hetzner

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/hetzner/hetznertest"
	"github.com/google/go-cmp/cmp"
	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxVtj1Vb8iqkd0ZUcR5Q3uSeSjc8mTqSw4b0n2Ur4Tl operator@calypso"

var (
	homeA = netip.MustParseAddr("203.0.113.7")
	homeB = netip.MustParseAddr("198.51.100.23")
)

func newClient(t *testing.T, f *hetznertest.Server, token string) *Client {
	t.Helper()
	return NewClient(token, Options{Endpoint: f.URL, PollInterval: 5 * time.Millisecond, MaxRetryAfter: 2 * time.Second})
}

func testSpec() Spec {
	return Spec{SSHPublicKey: testKey, HomeIP: homeA, UserData: "#cloud-config\n"}
}

func provision(t *testing.T, c *Client, spec Spec) Plan {
	t.Helper()
	ctx := context.Background()
	p, err := c.PlanProvision(ctx, spec)
	if err != nil {
		t.Fatalf("PlanProvision() = %v", err)
	}
	if err := c.Apply(ctx, p); err != nil {
		t.Fatalf("Apply(provision) = %v", err)
	}
	return p
}

func TestProvisionCreatesThenNoChange(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	p := provision(t, c, testSpec())
	if got, want := stepCalls(p), []string{"POST /ssh_keys", "POST /firewalls", "POST /servers"}; !slices.Equal(got, want) {
		t.Errorf("provision steps = %v; want %v", got, want)
	}
	srv, ok := f.ServerNamed(DefaultName)
	if !ok {
		t.Fatalf("server %q not created", DefaultName)
	}
	if srv.ServerType.Name != "cpx11" || srv.Location.Name != "nbg1" || srv.Labels[LabelKey] != LabelValue {
		t.Errorf("server = %s in %s labels %v; want cpx11 in nbg1 managed-by=avalanche", srv.ServerType.Name, srv.Location.Name, srv.Labels)
	}
	if ud, _ := f.UserData(DefaultName); ud != "#cloud-config\n" {
		t.Errorf("user data = %q; want the spec's", ud)
	}
	fw, _ := f.Firewall(DefaultName)
	if len(fw.AppliedTo) != 1 || fw.AppliedTo[0].Server.ID != srv.ID {
		t.Errorf("firewall applied to %+v; want server %d", fw.AppliedTo, srv.ID)
	}
	checkRules(t, f, homeA)

	f.ResetCalls()
	p2 := provision(t, c, testSpec())
	if !p2.Empty() || len(f.Mutations()) != 0 {
		t.Errorf("second provision: plan %v, mutations %v; want none", stepCalls(p2), f.Mutations())
	}
}

func TestProvisionAppliesFirewallToExistingServer(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	ctx := context.Background()
	// A managed server that lost its firewall (created by hand, say).
	_, _, err := c.api.Server.Create(ctx, hcloud.ServerCreateOpts{Name: DefaultName, Labels: labels(),
		ServerType: &hcloud.ServerType{Name: "cpx11"}, Image: &hcloud.Image{Name: DefaultImage}, Location: &hcloud.Location{Name: "nbg1"}})
	if err != nil {
		t.Fatal(err)
	}
	p := provision(t, c, testSpec())
	want := []string{"POST /ssh_keys", "POST /firewalls", "POST /firewalls/{id}/actions/apply_to_resources"}
	if diff := cmp.Diff(want, stepCalls(p)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	srv, _ := f.ServerNamed(DefaultName)
	if fw, _ := f.Firewall(DefaultName); len(fw.AppliedTo) != 1 || fw.AppliedTo[0].Server.ID != srv.ID {
		t.Errorf("firewall applied to %+v; want server %d", fw.AppliedTo, srv.ID)
	}
	if p := provision(t, c, testSpec()); !p.Empty() {
		t.Errorf("re-run plan = %v; want empty", stepCalls(p))
	}
}

func TestServerTypeUnavailable(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	spec := testSpec()
	spec.Location = "ash"
	_, err := c.PlanProvision(context.Background(), spec)
	want := "server type cpx11 is not available in ash (available in: fsn1, nbg1, hel1)"
	if err == nil || err.Error() != want {
		t.Errorf("PlanProvision(ash) = %v; want %q", err, want)
	}
	if m := f.Mutations(); len(m) != 0 {
		t.Errorf("mutations = %v; want none", m)
	}
}

func TestDeprovision(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	ctx := context.Background()
	provision(t, c, testSpec())
	p, err := c.PlanDeprovision(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, p); err != nil {
		t.Fatalf("Apply(deprovision) = %v", err)
	}
	for i, want := range []string{"DELETE /servers/", "DELETE /firewalls/", "DELETE /ssh_keys/"} {
		if !strings.HasPrefix(stepCalls(p)[i], want) {
			t.Errorf("step %d = %s; want %s...", i, stepCalls(p)[i], want)
		}
	}
	if s, fw, k := f.Counts(); s+fw+k != 0 {
		t.Errorf("after deprovision: %d servers, %d firewalls, %d keys; want none", s, fw, k)
	}
	if p, _ := c.PlanDeprovision(ctx, ""); !p.Empty() {
		t.Errorf("second deprovision plan = %v; want empty", stepCalls(p))
	}
}

func TestRefusesUnmanaged(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	ctx := context.Background()
	if _, _, err := c.api.Firewall.Create(ctx, hcloud.FirewallCreateOpts{Name: DefaultName}); err != nil {
		t.Fatal(err)
	}
	for name, plan := range map[string]func() (Plan, error){
		"provision":   func() (Plan, error) { return c.PlanProvision(ctx, testSpec()) },
		"deprovision": func() (Plan, error) { return c.PlanDeprovision(ctx, "") },
		"home ip":     func() (Plan, error) { return c.PlanFirewallRules(ctx, "", homeB) },
	} {
		if _, err := plan(); err == nil || !strings.Contains(err.Error(), "is not labelled managed-by=avalanche") {
			t.Errorf("%s on an unmanaged firewall = %v; want refusal", name, err)
		}
	}
}

func TestHomeIPChange(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	ctx := context.Background()
	provision(t, c, testSpec())
	fw, _ := f.Firewall(DefaultName)
	hf := HomeIPFirewall{Client: c}

	f.ResetCalls()
	changed, err := hf.SetHomeIP(ctx, homeB)
	if err != nil || !changed {
		t.Fatalf("SetHomeIP(%s) = %t, %v; want true, nil", homeB, changed, err)
	}
	want := []string{fmt.Sprintf("POST /firewalls/%d/actions/set_rules", fw.ID)}
	if diff := cmp.Diff(want, f.Mutations()); diff != "" {
		t.Errorf("mutations (-want +got):\n%s", diff)
	}
	checkRules(t, f, homeB)

	f.ResetCalls()
	if changed, err := hf.SetHomeIP(ctx, homeB); err != nil || changed || len(f.Mutations()) != 0 {
		t.Errorf("SetHomeIP(same) = %t, %v, mutations %v; want no change", changed, err, f.Mutations())
	}
	if _, err := hf.SetHomeIP(ctx, netip.MustParseAddr("192.168.1.2")); err == nil {
		t.Errorf("SetHomeIP(192.168.1.2) = nil; want rejection of a private address")
	}
	checkRules(t, f, homeB)
}

func TestAPIErrorsKeepRules(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		fault   *hetznertest.Fault
		wantErr string
	}{
		{"server error", hetznertest.Token, &hetznertest.Fault{Method: "POST", Path: "/firewalls/", Status: 500}, "service_error"},
		{"rate limited past retries", hetznertest.Token, &hetznertest.Fault{Method: "POST", Path: "/firewalls/", Status: 429, Code: "rate_limit_exceeded", RetryAfter: "0"}, "rate_limit_exceeded"},
		{"retry-after too long", hetznertest.Token, &hetznertest.Fault{Status: 429, Code: "rate_limit_exceeded", RetryAfter: "3600"}, "rate_limit_exceeded"},
		{"bad token", "wrong-token", nil, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := hetznertest.New(t)
			provision(t, newClient(t, f, hetznertest.Token), testSpec())
			if tt.fault != nil {
				f.AddFault(*tt.fault)
			}
			hf := HomeIPFirewall{Client: newClient(t, f, tt.token)}
			changed, err := hf.SetHomeIP(context.Background(), homeB)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("SetHomeIP() = %t, %v; want error containing %q", changed, err, tt.wantErr)
			}
			checkRules(t, f, homeA)
		})
	}
}

func TestRateLimitRetryAfter(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	provision(t, c, testSpec())
	f.AddFault(hetznertest.Fault{Method: "POST", Path: "/firewalls/", Status: 429, Code: "rate_limit_exceeded", RetryAfter: "1", Times: 1})
	f.ResetCalls()
	start := time.Now()
	if changed, err := (HomeIPFirewall{Client: c}).SetHomeIP(context.Background(), homeB); err != nil || !changed {
		t.Fatalf("SetHomeIP() after one 429 = %t, %v; want true, nil", changed, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v; want at least the 1s Retry-After", d)
	}
	if n := len(f.Mutations()); n != 2 {
		t.Errorf("mutating calls = %v; want the rejected one and its retry", f.Mutations())
	}
	checkRules(t, f, homeB)
}

func TestDryRunPlanText(t *testing.T) {
	f := hetznertest.New(t)
	c := newClient(t, f, hetznertest.Token)
	p, err := c.PlanProvision(context.Background(), testSpec())
	if err != nil {
		t.Fatal(err)
	}
	want := `provision exit node "avalanche-exit-node": 3 API call(s)
  1. POST   /ssh_keys                                  create ssh key "avalanche-exit-node" (ssh-ed25519)
  2. POST   /firewalls                                 create firewall "avalanche-exit-node": in tcp 22 from 203.0.113.7/32; in udp 41641 from 0.0.0.0/0, ::/0
  3. POST   /servers                                   create server "avalanche-exit-node" (cpx11 in nbg1, image debian-12, ssh key and firewall "avalanche-exit-node", 14 bytes of user data)
`
	if diff := cmp.Diff(want, p.String()); diff != "" {
		t.Errorf("plan text (-want +got):\n%s", diff)
	}
	if m := f.Mutations(); len(m) != 0 {
		t.Errorf("planning made mutating calls %v", m)
	}
}

func stepCalls(p Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Method+" "+s.Path)
	}
	return out
}

// checkRules asserts the firewall holds exactly the full rule set for home.
func checkRules(t *testing.T, f *hetznertest.Server, home netip.Addr) {
	t.Helper()
	fw, ok := f.Firewall(DefaultName)
	if !ok {
		t.Fatalf("firewall %q missing", DefaultName)
	}
	want := []schema.FirewallRule{
		{Direction: "in", Protocol: "tcp", Port: hcloud.Ptr("22"), SourceIPs: []string{home.String() + "/32"}, DestinationIPs: []string{}, Description: hcloud.Ptr("ssh from home")},
		{Direction: "in", Protocol: "udp", Port: hcloud.Ptr("41641"), SourceIPs: []string{"0.0.0.0/0", "::/0"}, DestinationIPs: []string{}, Description: hcloud.Ptr("tailscale")},
	}
	if diff := cmp.Diff(want, fw.Rules); diff != "" {
		t.Errorf("firewall rules (-want +got):\n%s", diff)
	}
}
