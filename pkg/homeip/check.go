package homeip

import (
	"fmt"
	"net/netip"
)

// Check rejects addresses that cannot be the home's public IP:
// unspecified, private (RFC 1918), CGNAT 100.64.0.0/10 (which includes
// Tailscale's addresses), loopback, link-local, unique-local (fc00::/7)
// and multicast. Writing one of those into the firewall would lock the
// operator out of SSH.
func Check(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return fmt.Errorf("home IP is empty")
	case a.IsLoopback(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsMulticast():
		return fmt.Errorf("home IP %s is not a public address", a)
	case a.IsPrivate(): // RFC 1918 and fc00::/7
		return fmt.Errorf("home IP %s is a private address", a)
	case cgnat.Contains(a):
		return fmt.Errorf("home IP %s is a CGNAT/Tailscale address", a)
	}
	return nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")
