package enrol

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	sopsage "github.com/getsops/sops/v3/age"
	"go.yaml.in/yaml/v3"
)

// SopsConfigFile is the SOPS configuration, relative to the repository.
const SopsConfigFile = ".sops.yaml"

// sopsYAML is .sops.yaml read with the YAML node API. Edits are made to
// the text, line by line, at the places the nodes say, so that every
// comment, blank line and alignment outside the edited lines stays as it
// was; the result is parsed again before anything is written.
type sopsYAML struct {
	lines []string // each with its "\n"
	keys  []*yaml.Node
	rules []sopsRule
}

// sopsRule is one creation rule.
type sopsRule struct {
	pathRegex   string       // "" matches every file, as in sops
	host        string       // X of a secrets/nixos/X/ path_regex, else ""
	first, last int          // its lines, 1-based, inclusive
	ages        []*yaml.Node // the age lists of its key groups
}

var hostRuleRE = regexp.MustCompile(`secrets/nixos/([A-Za-z0-9-]+)/`)

func parseSopsYAML(text string) (*sopsYAML, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", SopsConfigFile, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a YAML mapping", SopsConfigFile)
	}
	s := &sopsYAML{lines: strings.SplitAfter(text, "\n")}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch v := root.Content[i+1]; root.Content[i].Value {
		case "keys":
			s.keys = v.Content
		case "creation_rules":
			for _, r := range v.Content {
				s.rules = append(s.rules, newRule(r))
			}
		}
	}
	return s, nil
}

func newRule(n *yaml.Node) sopsRule {
	r := sopsRule{first: n.Line, last: lastLine(n)}
	if re := mapValue(n, "path_regex"); re != nil {
		r.pathRegex = re.Value
		if m := hostRuleRE.FindStringSubmatch(re.Value); m != nil {
			r.host = m[1]
		}
	}
	if groups := mapValue(n, "key_groups"); groups != nil {
		for _, g := range groups.Content {
			if age := mapValue(g, "age"); age != nil {
				r.ages = append(r.ages, age)
			}
		}
	}
	return r
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// key returns the keys: item anchored &name, or nil.
func (s *sopsYAML) key(name string) *yaml.Node {
	i := slices.IndexFunc(s.keys, func(k *yaml.Node) bool { return k.Anchor == name })
	if i < 0 {
		return nil
	}
	return s.keys[i]
}

// admins are the aliases every host rule lists besides its own host: the
// people (and keys) that read every host's secrets.
func (s *sopsYAML) admins() []string {
	var common []string
	first := true
	for _, r := range s.rules {
		if r.host == "" {
			continue
		}
		var mine []string
		for _, a := range r.ages {
			for _, item := range a.Content {
				if item.Kind == yaml.AliasNode && item.Value != r.host {
					mine = append(mine, item.Value)
				}
			}
		}
		if first {
			common, first = mine, false
			continue
		}
		common = slices.DeleteFunc(common, func(a string) bool { return !slices.Contains(mine, a) })
	}
	return common
}

// checkAdmins makes sure the admins' keys are real recipients, not the
// placeholders of a fresh checkout: a host's file must stay readable by
// someone who can edit it.
func (s *sopsYAML) checkAdmins() error {
	admins := s.admins()
	if len(admins) == 0 {
		return fmt.Errorf("%s: the host rules share no admin key; a new host's file would be readable by the host alone", SopsConfigFile)
	}
	for _, a := range admins {
		k := s.key(a)
		if k == nil {
			continue // an alias without anchor: yaml already refused it
		}
		if _, err := sopsage.MasterKeyFromRecipient(k.Value); err != nil {
			return fmt.Errorf("%s: &%s is %q, not an age recipient: replace the placeholders first (your recipient: age-keygen -y ~/.config/sops/age/keys.txt; see docs/secrets.md)", SopsConfigFile, a, k.Value)
		}
	}
	return nil
}

// edit replaces del lines from line (1-based) with ins.
type edit struct {
	line, del int
	ins       []string
}

// apply makes the edits, bottom up so line numbers stay valid.
func (s *sopsYAML) apply(edits []edit) string {
	sort.Slice(edits, func(i, j int) bool { return edits[i].line > edits[j].line })
	lines := slices.Clone(s.lines)
	for _, e := range edits {
		lines = slices.Replace(lines, e.line-1, e.line-1+e.del, e.ins...)
	}
	return strings.Join(lines, "")
}

// addHost adds `- &name recipient` after the last host's key and a rule
// for secrets/nixos/name/ after the last host rule, written like it, that
// gives the file to name and the admins.
func (s *sopsYAML) addHost(name, recipient string) (string, error) {
	if s.key(name) != nil {
		return "", fmt.Errorf("%s already has a key &%s", SopsConfigFile, name)
	}
	last := -1
	for i, r := range s.rules {
		if r.host == name {
			return "", fmt.Errorf("%s already has a creation rule for secrets/nixos/%s/", SopsConfigFile, name)
		}
		if r.host != "" {
			last = i
		}
	}
	if last < 0 {
		return "", fmt.Errorf("%s has no secrets/nixos/HOST/ creation rule to follow; add the first host by hand (docs/secrets.md)", SopsConfigFile)
	}
	tmpl := s.rules[last]
	prev := s.key(tmpl.host)
	if prev == nil {
		return "", fmt.Errorf("%s: the rule for secrets/nixos/%s/ uses no key &%s", SopsConfigFile, tmpl.host, tmpl.host)
	}
	keyLine := s.lines[prev.Line-1]
	dash := strings.Index(keyLine, "-")
	if dash < 0 || strings.TrimSpace(keyLine[:dash]) != "" {
		return "", fmt.Errorf("%s line %d: the key &%s is not a `- &%s age1…` line; add the host by hand", SopsConfigFile, prev.Line, tmpl.host, tmpl.host)
	}
	rule, err := s.ruleLike(tmpl, name)
	if err != nil {
		return "", err
	}
	return s.apply([]edit{
		{line: prev.Line + 1, ins: []string{keyLine[:dash] + "- &" + name + " " + recipient + "\n"}},
		{line: tmpl.last + 1, ins: rule},
	}), nil
}

// ruleLike copies tmpl's lines for host name: its path and an age list of
// name and the admins.
func (s *sopsYAML) ruleLike(tmpl sopsRule, name string) ([]string, error) {
	if len(tmpl.ages) != 1 || tmpl.ages[0].Style&yaml.FlowStyle == 0 {
		return nil, fmt.Errorf("%s: the rule for secrets/nixos/%s/ is not `key_groups: [{age: [*host, *admin]}]` with a flow list; add the host by hand", SopsConfigFile, tmpl.host)
	}
	ages := tmpl.ages[0]
	list := "[" + strings.Join(append([]string{"*" + name}, aliases(s.admins())...), ", ") + "]"
	out := slices.Clone(s.lines[tmpl.first-1 : tmpl.last])
	for i := range out {
		out[i] = strings.ReplaceAll(out[i], "secrets/nixos/"+tmpl.host+"/", "secrets/nixos/"+name+"/")
	}
	line, err := replaceFlow(out[ages.Line-tmpl.first], ages.Column-1, list)
	if err != nil {
		return nil, fmt.Errorf("%s line %d: %w", SopsConfigFile, ages.Line, err)
	}
	out[ages.Line-tmpl.first] = line
	return out, nil
}

func aliases(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "*" + n
	}
	return out
}

// replaceFlow replaces the one-line flow list starting at col with list.
func replaceFlow(line string, col int, list string) (string, error) {
	if col >= len(line) || line[col] != '[' {
		return "", errors.New("no [ where the age list starts")
	}
	end := strings.IndexByte(line[col:], ']')
	if end < 0 {
		return "", errors.New("the age list spans several lines; edit it by hand")
	}
	return line[:col] + list + line[col+end+1:], nil
}

// removeHost deletes name's key, its own rules and its alias (or its
// recipient written out) from every other rule's age list.
func (s *sopsYAML) removeHost(name, recipient string) (string, error) {
	var edits []edit
	if k := s.key(name); k != nil {
		edits = append(edits, edit{line: k.Line, del: 1})
	}
	for _, r := range s.rules {
		if r.host == name {
			edits = append(edits, edit{line: r.first, del: r.last - r.first + 1})
			continue
		}
		for _, a := range r.ages {
			e, err := s.dropFromList(a, name, recipient)
			if err != nil {
				return "", err
			}
			if e != nil {
				edits = append(edits, *e)
			}
		}
	}
	return s.apply(edits), nil
}

// dropFromList rewrites a flow age list without *name and recipient.
func (s *sopsYAML) dropFromList(a *yaml.Node, name, recipient string) (*edit, error) {
	var keep []string
	for _, item := range a.Content {
		switch {
		case item.Kind == yaml.AliasNode && item.Value == name, item.Kind == yaml.ScalarNode && item.Value == recipient:
		case item.Kind == yaml.AliasNode:
			keep = append(keep, "*"+item.Value)
		default:
			keep = append(keep, item.Value)
		}
	}
	if len(keep) == len(a.Content) {
		return nil, nil
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("%s line %d: removing %s leaves this age list empty; change the rule by hand", SopsConfigFile, a.Line, name)
	}
	if a.Style&yaml.FlowStyle == 0 {
		return nil, fmt.Errorf("%s line %d: %s is in a block list; remove it by hand", SopsConfigFile, a.Line, name)
	}
	line, err := replaceFlow(s.lines[a.Line-1], a.Column-1, "["+strings.Join(keep, ", ")+"]")
	if err != nil {
		return nil, fmt.Errorf("%s line %d: %w", SopsConfigFile, a.Line, err)
	}
	return &edit{line: a.Line, del: 1, ins: []string{line}}, nil
}

// rotateHost replaces the recipient of the key &name.
func (s *sopsYAML) rotateHost(name, recipient string) (old string, text string, err error) {
	k := s.key(name)
	if k == nil {
		return "", "", fmt.Errorf("%s has no key &%s", SopsConfigFile, name)
	}
	line := s.lines[k.Line-1]
	at := strings.Index(line, "&"+name)
	i := -1
	if at >= 0 {
		i = strings.Index(line[at:], k.Value)
	}
	if i < 0 {
		return "", "", fmt.Errorf("%s line %d: cannot find the recipient of &%s; replace it by hand", SopsConfigFile, k.Line, name)
	}
	i += at
	return k.Value, s.apply([]edit{{line: k.Line, del: 1, ins: []string{line[:i] + recipient + line[i+len(k.Value):]}}}), nil
}

type yamlNode = yaml.Node
