package homeip

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"tailscale.com/ipn/ipnstate"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		ip   string
		want string // "" means accepted
	}{
		{"203.0.113.7", ""},
		{"2a01:4f8::1", ""},
		{"::ffff:203.0.113.7", ""},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"192.168.1.1", "private"},
		{"fd12::1", "private"},
		{"100.64.0.1", "CGNAT"},
		{"100.101.102.103", "CGNAT"},
		{"127.0.0.1", "not a public"},
		{"::1", "not a public"},
		{"169.254.1.1", "not a public"},
		{"fe80::1", "not a public"},
		{"0.0.0.0", "empty"},
		{"", "empty"},
	}
	for _, tt := range tests {
		var a netip.Addr
		if tt.ip != "" {
			a = netip.MustParseAddr(tt.ip)
		}
		err := Check(a)
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%q) = %v; want %q", tt.ip, err, tt.want)
		}
	}
}

type fakeFirewall struct {
	current netip.Addr
	writes  []netip.Addr
	fail    error
}

func (f *fakeFirewall) SetHomeIP(_ context.Context, ip netip.Addr) (bool, error) {
	if f.fail != nil {
		return false, f.fail
	}
	if ip == f.current {
		return false, nil
	}
	f.current = ip
	f.writes = append(f.writes, ip)
	return true, nil
}

func TestWatcherObserve(t *testing.T) {
	const a, b, c = "203.0.113.7", "198.51.100.23", "192.0.2.99"
	fw := &fakeFirewall{current: netip.MustParseAddr(a)}
	w := &Watcher{Firewall: fw}
	ctx := context.Background()
	steps := []struct {
		ip      string
		fail    error
		changed bool
		wantErr bool
	}{
		{ip: a},                         // first reading: waits
		{ip: a},                         // agrees, firewall already has it: no write
		{ip: b},                         // new: waits
		{ip: c},                         // flap: waits again
		{ip: b},                         // disagrees with c: waits
		{ip: b, changed: true},          // two agreeing readings: written
		{ip: b},                         // unchanged: nothing
		{ip: "10.0.0.1", wantErr: true}, // private: refused
		{ip: b},                         // the bad reading broke the streak
		{ip: c},
		{ip: c, fail: errors.New("503"), wantErr: true}, // failed write
		{ip: c, changed: true},                          // retried on the next agreeing reading
	}
	for i, s := range steps {
		fw.fail = s.fail
		changed, err := w.Observe(ctx, netip.MustParseAddr(s.ip))
		if changed != s.changed || (err != nil) != s.wantErr {
			t.Fatalf("step %d: Observe(%s) = %t, %v; want %t, err=%t", i, s.ip, changed, err, s.changed, s.wantErr)
		}
	}
	want := []netip.Addr{netip.MustParseAddr(b), netip.MustParseAddr(c)}
	if !slices.Equal(fw.writes, want) {
		t.Errorf("firewall writes = %v; want %v", fw.writes, want)
	}
}

func TestInterfaceSource(t *testing.T) {
	src := Interface{Name: "wan0", Addrs: func(name string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2a01:4f8::5"),
			netip.MustParseAddr("100.64.1.1"), netip.MustParseAddr("203.0.113.7")}, nil
	}}
	got, err := src.HomeIP(context.Background())
	if err != nil || got != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("HomeIP() = %v, %v; want the public IPv4", got, err)
	}
	src.Addrs = func(string) ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.168.0.2")}, nil }
	if got, err := src.HomeIP(context.Background()); err == nil {
		t.Errorf("HomeIP() with only a private address = %v; want error", got)
	}
}

type fakeStatus struct{ addrs []string }

func (f fakeStatus) Status(context.Context) (*ipnstate.Status, error) {
	return &ipnstate.Status{Self: &ipnstate.PeerStatus{Addrs: f.addrs}}, nil
}

func TestTailscaleSource(t *testing.T) {
	tests := []struct {
		addrs []string
		want  string // "" means an error
	}{
		{[]string{"192.168.1.10:41641", "203.0.113.7:41641", "[2a01:4f8::5]:41641"}, "203.0.113.7"},
		{[]string{"[2a01:4f8::5]:41641", "10.0.0.2:41641"}, "2a01:4f8::5"},
		{[]string{"192.168.1.10:41641", "100.100.1.1:41641"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		got, err := Tailscale{Local: fakeStatus{tt.addrs}}.HomeIP(context.Background())
		if tt.want == "" {
			if err == nil {
				t.Errorf("HomeIP(%v) = %v; want error", tt.addrs, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("HomeIP(%v) = %v, %v; want %s", tt.addrs, got, err, tt.want)
		}
	}
}
