package enrol

import (
	"context"
	"fmt"
	"os"
)

// RemoveHost takes a host out of the fleet: its inventory entry, its host
// folder, its secrets folder, its key and rules in .sops.yaml, and its
// recipient from every other file it could read (re-wrapped). The removed
// files stay in git history: change the values the host knew.
func (r *Repo) RemoveHost(ctx context.Context, name string) ([]string, error) {
	if !hostNameRE.MatchString(name) {
		return nil, fmt.Errorf("host name %q: want lower-case letters, digits and '-'", name)
	}
	p := newPlan(r.Root)
	inInventory, err := r.removeFromInventory(ctx, p, name)
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{hostDir(name), secretsDir(name)} {
		if _, err := os.Stat(r.path(dir)); err == nil {
			p.removeDir(dir, "removed %s/", dir)
		}
	}
	y, err := r.readSopsYAML()
	if err != nil {
		return nil, err
	}
	k := y.key(name)
	if !inInventory && k == nil && len(p.remove) == 0 {
		return nil, fmt.Errorf("there is no host %s: not in %s, %s or %s", name, InventoryFile, hostDir(name), SopsConfigFile)
	}
	if k != nil || y.hasRule(name) {
		recipient := ""
		if k != nil {
			recipient = k.Value
		}
		text, err := y.removeHost(name, recipient)
		if err != nil {
			return nil, err
		}
		ch := change{host: name, removed: recipient, gone: secretsDir(name)}
		if err := r.updateSecrets(p, y, text, ch); err != nil {
			return nil, err
		}
	}
	return p.apply()
}

func (y *sopsYAML) hasRule(name string) bool {
	for _, r := range y.rules {
		if r.host == name {
			return true
		}
	}
	return false
}

// removeFromInventory plans the inventory without name; false when name
// was not in it.
func (r *Repo) removeFromInventory(ctx context.Context, p *plan, name string) (bool, error) {
	old, err := os.ReadFile(r.path(InventoryFile))
	if err != nil {
		return false, err
	}
	inv, err := evalInventory(ctx, r.Root, string(old))
	if err != nil {
		return false, err
	}
	v, ok := inv[name]
	if !ok {
		return false, nil
	}
	if e := entryOf(v); e.Dir != "" && e.Dir != hostDir(name) {
		return false, fmt.Errorf("%s lives in %s, not in nixos/hosts: remove it by hand", name, e.Dir)
	}
	text, err := removeEntry(string(old), name)
	if err != nil {
		return false, err
	}
	if err := checkEdit(ctx, r.Root, string(old), text, name, nil); err != nil {
		return false, err
	}
	p.write(InventoryFile, []byte(text), "removed %s from %s", name, InventoryFile)
	return true, nil
}

// RotateHostKey gives a host's files to its new SSH host key (after a
// reinstall or a new SD card): the key in .sops.yaml is replaced and every
// file the host reads is re-wrapped, so the old key no longer opens the
// current files. Values are not re-encrypted (sops updatekeys); rotate the
// data key and the values too when the old key may be compromised.
func (r *Repo) RotateHostKey(ctx context.Context, name string, key HostKey) ([]string, error) {
	y, err := r.readSopsYAML()
	if err != nil {
		return nil, err
	}
	k := y.key(name)
	if k == nil {
		return nil, fmt.Errorf("%s has no key &%s: is %s enrolled (add-host)?", SopsConfigFile, name, name)
	}
	if k.Value == key.Age {
		return nil, fmt.Errorf("%s is already &%s's recipient: nothing to rotate", key.Age, name)
	}
	for _, other := range y.keys {
		if other.Value == key.Age {
			return nil, fmt.Errorf("%s: this host key's recipient %s is already &%s's", SopsConfigFile, key.Age, other.Anchor)
		}
	}
	old, text, err := y.rotateHost(name, key.Age)
	if err != nil {
		return nil, err
	}
	p := newPlan(r.Root)
	if err := r.updateSecrets(p, y, text, change{host: name, added: key.Age, removed: old}); err != nil {
		return nil, err
	}
	return p.apply()
}
