package enrol

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// change says which recipients of one host an edit of .sops.yaml may add
// or remove; every other file must keep exactly the recipients it had.
type change struct {
	host    string
	added   string // a recipient that may appear, or ""
	removed string // a recipient that may go, or ""
	newFile string // a secrets file to create for the host, or ""
	gone    string // a folder whose files are deleted, not re-wrapped
}

func (r *Repo) readSopsYAML() (*sopsYAML, error) {
	b, err := os.ReadFile(r.path(SopsConfigFile))
	if err != nil {
		return nil, err
	}
	return parseSopsYAML(string(b))
}

// updateSecrets plans the edited .sops.yaml (text) and every sops file it
// affects: each file whose rule now lists other recipients is re-wrapped,
// after checking that only the host's recipient changed anywhere, and the
// host's new secrets file is encrypted.
func (r *Repo) updateSecrets(p *plan, old *sopsYAML, text string, ch change) error {
	edited, err := parseSopsYAML(text)
	if err != nil {
		return fmt.Errorf("the edited %s does not parse (nothing was written): %w", SopsConfigFile, err)
	}
	tmp, err := os.MkdirTemp("", "enrol-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, SopsConfigFile), []byte(text), 0o600); err != nil {
		return err
	}
	before, err := loadRules(r.path(SopsConfigFile), old)
	if err != nil {
		return err
	}
	after, err := loadRules(filepath.Join(tmp, SopsConfigFile), edited)
	if err != nil {
		return fmt.Errorf("the edited %s (nothing was written): %w", SopsConfigFile, err)
	}
	files, err := secretFiles(r.Root)
	if err != nil {
		return err
	}
	after.names = keyNames(edited)
	for _, f := range files {
		if ch.gone != "" && strings.HasPrefix(f, ch.gone+"/") {
			continue
		}
		if err := r.rewrapFile(p, before, after, f, ch); err != nil {
			return err
		}
	}
	if ch.newFile != "" {
		if err := r.createSecrets(p, after, ch); err != nil {
			return err
		}
	}
	p.write(SopsConfigFile, []byte(text), "%s", sopsNote(ch))
	return nil
}

func sopsNote(ch change) string {
	switch {
	case ch.added != "" && ch.removed != "":
		return fmt.Sprintf("%s: &%s is now %s (was %s)", SopsConfigFile, ch.host, ch.added, ch.removed)
	case ch.added != "":
		return fmt.Sprintf("%s: added key &%s %s and the rule for %s/", SopsConfigFile, ch.host, ch.added, secretsDir(ch.host))
	}
	return fmt.Sprintf("%s: removed &%s (%s) from every rule", SopsConfigFile, ch.host, ch.removed)
}

// rewrapFile checks one file's recipients before and after the edit and
// re-wraps it when they differ.
func (r *Repo) rewrapFile(p *plan, before, after *rules, f string, ch change) error {
	was, err := before.rule(f)
	if err != nil || was == nil {
		return err // a file no rule covers is not sops' (nor ours)
	}
	now, err := after.rule(f)
	if err != nil {
		return fmt.Errorf("the edited %s (nothing was written): %w", SopsConfigFile, err)
	}
	if now == nil {
		return fmt.Errorf("the edited %s covers %s no more (nothing was written); edit it by hand", SopsConfigFile, f)
	}
	old, cur := recipients(was.KeyGroups), recipients(now.KeyGroups)
	if slices.Equal(sorted(old), sorted(cur)) {
		return nil // not this host's file: left as it is
	}
	for _, k := range cur {
		if !slices.Contains(old, k) && k != ch.added {
			return fmt.Errorf("the edited %s would give %s to %s too (nothing was written)", SopsConfigFile, f, k)
		}
	}
	for _, k := range old {
		if !slices.Contains(cur, k) && k != ch.removed {
			return fmt.Errorf("the edited %s would take %s from %s (nothing was written)", SopsConfigFile, f, k)
		}
	}
	out, err := rewrap(r.Root, f, now, after.stores, r.services())
	if err != nil || out == nil {
		return err
	}
	p.write(f, out, "re-wrapped %s for %s", f, after.describe(now.KeyGroups))
	return nil
}

// createSecrets encrypts the host's new secrets file to the recipients its
// rule lists, which must be the host and the admins of every host rule.
func (r *Repo) createSecrets(p *plan, after *rules, ch change) error {
	conf, err := after.rule(ch.newFile)
	if err != nil {
		return err
	}
	if conf == nil || !slices.Contains(recipients(conf.KeyGroups), ch.added) {
		return fmt.Errorf("the edited %s does not give %s to %s (nothing was written)", SopsConfigFile, ch.newFile, ch.host)
	}
	out, err := encryptNew(ch.newFile, "{}\n", conf, after.stores, r.services())
	if err != nil {
		return err
	}
	p.write(ch.newFile, out, "created %s (empty; encrypted to %s)", ch.newFile, after.describe(conf.KeyGroups))
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// keyNames maps each recipient of .sops.yaml's keys to its anchor.
func keyNames(y *sopsYAML) map[string]string {
	names := map[string]string{}
	for _, k := range y.keys {
		if k.Anchor != "" {
			names[k.Value] = "&" + k.Anchor
		}
	}
	return names
}
