// Package enrol edits a checkout of the fleet repository for the admin's
// host commands: add-host, remove-host and rotate-host-key. It writes the
// inventory entry and the host folder, the host's age recipient (from its
// SSH ed25519 host key) into .sops.yaml, the host's own secrets file, and
// re-wraps the data keys of the files the host reads, as `sops updatekeys`
// does. Every change is computed and checked first (the inventory is
// evaluated with nix-instantiate, .sops.yaml is read back by sops) and
// written only when all of it holds, so bad input changes nothing.
//
// It links sops, so only avalanche-decrypt imports it: the resident daemon
// must not (agent/cmd/avalanche-agent/deps_test.go).
package enrol

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/getsops/sops/v3/keyservice"
)

// Repo is a checkout of the fleet repository.
type Repo struct {
	// Root is the repository's top directory.
	Root string
	// KeyServices wrap and unwrap data keys; nil means sops' own local key
	// service, which finds the admin's age key the way `sops` does.
	KeyServices []keyservice.KeyServiceClient
}

// Host is a host to enrol.
type Host struct {
	Name     string
	System   string // aarch64-linux or x86_64-linux
	Hardware string // nixos/profiles/hw-<Hardware>.nix
	Roles    []string
	Key      HostKey
	// StateVersion is its system.stateVersion; "" takes the newest one of
	// the existing host folders.
	StateVersion string
}

var (
	hostNameRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	stateVersionRE = regexp.MustCompile(`system\.stateVersion\s*=\s*"([0-9]{2}\.[0-9]{2})"`)
	systems        = []string{"aarch64-linux", "x86_64-linux"}
)

func (r *Repo) services() []keyservice.KeyServiceClient {
	if r.KeyServices != nil {
		return r.KeyServices
	}
	return []keyservice.KeyServiceClient{keyservice.NewLocalClient()}
}

func (r *Repo) path(rel string) string { return filepath.Join(r.Root, filepath.FromSlash(rel)) }

func hostDir(name string) string    { return "nixos/hosts/" + name }
func secretsDir(name string) string { return "secrets/nixos/" + name }

// AddHost enrols h and returns what it changed, one line each.
func (r *Repo) AddHost(ctx context.Context, h Host) ([]string, error) {
	if err := r.checkNewHost(&h); err != nil {
		return nil, err
	}
	p := newPlan(r.Root)
	if err := r.addToInventory(ctx, p, h); err != nil {
		return nil, err
	}
	p.write(hostDir(h.Name)+"/default.nix", []byte(hostNix(h)), "created %s/default.nix", hostDir(h.Name))
	y, err := r.readSopsYAML()
	if err != nil {
		return nil, err
	}
	if other := slices.IndexFunc(y.keys, func(k *yamlNode) bool { return k.Value == h.Key.Age }); other >= 0 {
		return nil, fmt.Errorf("%s: this host key's recipient %s is already &%s's", SopsConfigFile, h.Key.Age, y.keys[other].Anchor)
	}
	if err := y.checkAdmins(); err != nil {
		return nil, err
	}
	text, err := y.addHost(h.Name, h.Key.Age)
	if err != nil {
		return nil, err
	}
	ch := change{host: h.Name, added: h.Key.Age, newFile: secretsDir(h.Name) + "/secrets.yaml"}
	if err := r.updateSecrets(p, y, text, ch); err != nil {
		return nil, err
	}
	return p.apply()
}

// checkNewHost refuses a name, system, hardware or role that does not fit,
// and a host that exists already in any of the places it would be written.
func (r *Repo) checkNewHost(h *Host) error {
	if !hostNameRE.MatchString(h.Name) {
		return fmt.Errorf("host name %q: want lower-case letters, digits and '-' (a DNS label)", h.Name)
	}
	if !slices.Contains(systems, h.System) {
		return fmt.Errorf("--system %q: want one of %s", h.System, strings.Join(systems, ", "))
	}
	if err := r.checkProfiles("hw-", "--hardware", []string{h.Hardware}); err != nil {
		return err
	}
	if err := r.checkProfiles("role-", "--roles", h.Roles); err != nil {
		return err
	}
	for _, dir := range []string{hostDir(h.Name), secretsDir(h.Name)} {
		if _, err := os.Stat(r.path(dir)); err == nil {
			return fmt.Errorf("host %s exists already: %s is there (remove-host it first, or pick another name)", h.Name, dir)
		}
	}
	if h.StateVersion == "" {
		v, err := r.newestStateVersion()
		if err != nil {
			return err
		}
		h.StateVersion = v
	}
	return nil
}

// checkProfiles checks that nixos/profiles/<prefix><name>.nix exists for
// every name, naming the ones there are when one does not.
func (r *Repo) checkProfiles(prefix, flag string, names []string) error {
	have, err := filepath.Glob(r.path("nixos/profiles/" + prefix + "*.nix"))
	if err != nil {
		return err
	}
	var known []string
	for _, f := range have {
		known = append(known, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), prefix), ".nix"))
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("%s %q: there is no nixos/profiles/%s%s.nix (want one of %s)", flag, n, prefix, n, strings.Join(known, ", "))
		}
	}
	return nil
}

// newestStateVersion is the newest system.stateVersion of the host folders.
func (r *Repo) newestStateVersion() (string, error) {
	files, _ := filepath.Glob(r.path("nixos/hosts/*/default.nix"))
	var versions []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		if m := stateVersionRE.FindSubmatch(b); m != nil {
			versions = append(versions, string(m[1]))
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no host folder sets system.stateVersion to follow; pass --state-version")
	}
	sort.Strings(versions)
	return versions[len(versions)-1], nil
}

func (r *Repo) addToInventory(ctx context.Context, p *plan, h Host) error {
	old, err := os.ReadFile(r.path(InventoryFile))
	if err != nil {
		return err
	}
	_, _, bs, err := topLevelSet(string(old))
	if err != nil {
		return fmt.Errorf("%s: %w", InventoryFile, err)
	}
	if slices.ContainsFunc(bs, func(b binding) bool { return b.name == h.Name }) {
		return fmt.Errorf("host %s exists already in %s (remove-host it first, or pick another name)", h.Name, InventoryFile)
	}
	e := Entry{System: h.System, Hardware: h.Hardware, Roles: h.Roles}
	if e.Roles == nil {
		e.Roles = []string{}
	}
	text, err := addEntry(string(old), h.Name, e)
	if err != nil {
		return err
	}
	if err := checkEdit(ctx, r.Root, string(old), text, h.Name, &e); err != nil {
		return err
	}
	p.write(InventoryFile, []byte(text), "added %s to %s (%s, hw-%s, roles: %s)", h.Name, InventoryFile, h.System, h.Hardware, strings.Join(h.Roles, ", "))
	return nil
}

// hostNix is a new host's own folder: like the others, only what the
// profiles do not set.
func hostNix(h Host) string {
	profiles := []string{"hw-" + h.Hardware}
	for _, role := range h.Roles {
		profiles = append(profiles, "role-"+role)
	}
	return fmt.Sprintf(`# %s: %s (%s).
# Enrolled with `+"`just add-host`"+`; what only this host needs goes here.
{
  system.stateVersion = %q;
}
`, h.Name, h.System, strings.Join(profiles, ", "), h.StateVersion)
}
