package release

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// DefaultStoreDir is where store paths in a release must live.
const DefaultStoreDir = "/nix/store"

// Self identifies the host that checks a release.
type Self struct {
	// Output is the host's nixosConfigurations attribute.
	Output string
	// System is the host's Nix system, e.g. aarch64-linux.
	System string
	// Name is the system.name its toplevel is named after
	// (nixos-system-<Name>-<version>); empty means Output.
	Name string
	// StoreDir is the Nix store directory; empty means DefaultStoreDir.
	StoreDir string
}

// For returns this host's entry, after checking that the release is for
// exactly commit (the commit the host verified and is about to deploy),
// that the builder built it, and that the path is this host's system: the
// right Nix system and a toplevel named after this host. Failures wrap
// ErrInvalid or ErrFailed.
func (r Release) For(commit string, self Self) (Host, error) {
	if r.Commit != commit {
		return Host{}, fmt.Errorf("%w: the release is for commit %s, not the verified commit %s", ErrInvalid, r.Commit, commit)
	}
	if r.Error != "" {
		return Host{}, fmt.Errorf("%w %s: %s", ErrFailed, short(commit), r.Error)
	}
	h, ok := r.Hosts[self.Output]
	if !ok {
		return Host{}, fmt.Errorf("%w: the release of %s by %s does not name host %q (it names %s)",
			ErrInvalid, short(commit), r.Builder, self.Output, r.names())
	}
	if h.Error != "" {
		return Host{}, fmt.Errorf("%w %s for %s: %s", ErrFailed, short(commit), self.Output, h.Error)
	}
	if h.System != self.System {
		return Host{}, fmt.Errorf("%w: the release of %s gives host %q a %s system; this host is %s",
			ErrInvalid, short(commit), self.Output, h.System, self.System)
	}
	if err := self.checkPath(h.OutPath); err != nil {
		return Host{}, fmt.Errorf("%w: the release of %s for host %q: %w", ErrInvalid, short(commit), self.Output, err)
	}
	return h, nil
}

// storeName matches a store path's hash and name parts.
var storeName = regexp.MustCompile(`^([0-9a-df-np-sv-z]{32})-([A-Za-z0-9+\-._?=]+)$`)

// versionSuffix is how a NixOS version label (24.05.20240101.abcdef) follows
// the host name in a toplevel's name.
var versionSuffix = regexp.MustCompile(`^-[0-9]+\.[0-9]`)

// checkPath checks that out is a store path named like this host's
// toplevel: nixos-system-<name>, optionally followed by -<version> where
// the version starts like NixOS's (24.05…), so raccoon never accepts the
// system of raccoon-00.
func (s Self) checkPath(out string) error {
	dir := s.StoreDir
	if dir == "" {
		dir = DefaultStoreDir
	}
	base, ok := strings.CutPrefix(out, strings.TrimRight(dir, "/")+"/")
	m := storeName.FindStringSubmatch(base)
	if !ok || m == nil {
		return fmt.Errorf("%q is not a store path in %s", out, dir)
	}
	name := s.Name
	if name == "" {
		name = s.Output
	}
	want := "nixos-system-" + name
	if rest, ok := strings.CutPrefix(m[2], want); ok && (rest == "" || versionSuffix.MatchString(rest)) {
		return nil
	}
	return fmt.Errorf("%s is not this host's system (want %s or %s-<version>)", out, want, want)
}

// names lists the hosts of r for messages.
func (r Release) names() string {
	names := make([]string, 0, len(r.Hosts))
	for n := range r.Hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "no host"
	}
	return strings.Join(names, ", ")
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
