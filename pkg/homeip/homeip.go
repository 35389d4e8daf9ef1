// Package homeip watches the home network's public IP address and pushes
// it into the exit node's cloud firewall, which admits SSH only from home.
//
// A change is written only after two consecutive readings agree, and an
// address that cannot be a home's public IP (see Check) is never written,
// so a flapping or misread source cannot lock the operator out. The
// package never logs.
package homeip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"tailscale.com/ipn/ipnstate"
)

// Firewall stores the home IP in the cloud firewall. SetHomeIP replaces
// the firewall's complete rule set in one call and reports whether
// anything changed; on error the previous rules must remain.
type Firewall interface {
	SetHomeIP(ctx context.Context, ip netip.Addr) (changed bool, err error)
}

// Watcher debounces readings and writes agreed changes to Firewall.
// It is not safe for concurrent use.
type Watcher struct {
	Firewall Firewall

	pending netip.Addr // the last reading, waiting for a second one
	written netip.Addr // the last address written (or found) in the firewall
}

// Observe feeds one reading. It writes to the firewall only when ip equals
// the previous reading and differs from what was last written. changed
// reports whether the firewall's rules were replaced.
func (w *Watcher) Observe(ctx context.Context, ip netip.Addr) (changed bool, err error) {
	ip = ip.Unmap()
	if err := Check(ip); err != nil {
		w.pending = netip.Addr{}
		return false, err
	}
	if ip != w.pending {
		w.pending = ip
		return false, nil
	}
	if ip == w.written {
		return false, nil
	}
	changed, err = w.Firewall.SetHomeIP(ctx, ip)
	if err != nil {
		return false, fmt.Errorf("writing home ip %s to the firewall: %w", ip, err)
	}
	w.written = ip
	return changed, nil
}

// Poll takes one reading from src and observes it.
func (w *Watcher) Poll(ctx context.Context, src Source) (changed bool, err error) {
	ip, err := src.HomeIP(ctx)
	if err != nil {
		w.pending = netip.Addr{}
		return false, fmt.Errorf("reading home ip: %w", err)
	}
	return w.Observe(ctx, ip)
}

// Source yields one reading of the home's public IP.
type Source interface {
	HomeIP(ctx context.Context) (netip.Addr, error)
}

// Interface reads the first public address of a network interface: the
// WAN interface of a router that holds the public address itself.
type Interface struct {
	Name string
	// Addrs lists the interface's addresses; nil means the system's.
	Addrs func(name string) ([]netip.Addr, error)
}

// HomeIP implements Source.
func (i Interface) HomeIP(ctx context.Context) (netip.Addr, error) {
	addrs := i.Addrs
	if addrs == nil {
		addrs = systemAddrs
	}
	list, err := addrs(i.Name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing addresses of %s: %w", i.Name, err)
	}
	if a, ok := firstPublic(list); ok {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no public address among %v", i.Name, list)
}

func systemAddrs(name string) ([]netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	as, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// StatusAPI is the part of tailscale's *local.Client that Tailscale uses.
type StatusAPI interface {
	Status(ctx context.Context) (*ipnstate.Status, error)
}

// Tailscale reads the public endpoint tailscaled learned through STUN: the
// public address among the node's own endpoints (Status.Self.Addrs).
type Tailscale struct {
	Local StatusAPI
}

// HomeIP implements Source.
func (t Tailscale) HomeIP(ctx context.Context) (netip.Addr, error) {
	st, err := t.Local.Status(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading tailscale status: %w", err)
	}
	if st.Self == nil {
		return netip.Addr{}, errors.New("tailscale status has no self node")
	}
	var list []netip.Addr
	for _, s := range st.Self.Addrs {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			list = append(list, ap.Addr())
		}
	}
	if a, ok := firstPublic(list); ok {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("tailscale knows no public endpoint (endpoints %v)", st.Self.Addrs)
}

// firstPublic returns the first address that passes Check, preferring IPv4
// (a home's IPv6 prefix names many hosts, not the home).
func firstPublic(list []netip.Addr) (netip.Addr, bool) {
	var v6 netip.Addr
	for _, a := range list {
		a = a.Unmap()
		if Check(a) != nil {
			continue
		}
		if a.Is4() {
			return a, true
		}
		if !v6.IsValid() {
			v6 = a
		}
	}
	return v6, v6.IsValid()
}
