// Package nspawntest boots a real systemd (systemd-nspawn -b over a copy of
// the Debian rootfs that .ci/rootfs caches) and installs the agent in it as
// the NixOS module defines its service: the unit is rendered from the
// module's evaluated `systemd.services.avalanche-agent` and `systemd.mounts`
// (nixos/tests/eval's agentUnit), never written by hand. Tests then drive the
// machine through systemctl, journalctl and avalanche-agent inside it.
package nspawntest

import (
	"fmt"
	"sort"
	"strings"
)

// Unit is what the module declares for the agent, as nixos/tests/eval's
// agentUnit returns it.
type Unit struct {
	Service     Service        `json:"service"`
	Mounts      []Mount        `json:"mounts"`
	Groups      []string       `json:"groups"`
	AgentConfig map[string]any `json:"agentConfig"`
}

// Service is a NixOS systemd.services.<name> attribute set (the part the
// module sets).
type Service struct {
	Description   string            `json:"description"`
	WantedBy      []string          `json:"wantedBy"`
	Wants         []string          `json:"wants"`
	After         []string          `json:"after"`
	Environment   map[string]string `json:"environment"`
	Path          []string          `json:"path"`
	ServiceConfig map[string]any    `json:"serviceConfig"`
}

// Mount is a NixOS systemd.mounts entry.
type Mount struct {
	What       string   `json:"what"`
	Where      string   `json:"where"`
	Type       string   `json:"type"`
	Options    string   `json:"options"`
	RequiredBy []string `json:"requiredBy"`
	Before     []string `json:"before"`
}

// HostPath is appended to the PATH NixOS derives from `path`: on the Debian
// rootfs the module's packages (nix, git, systemd) are the rootfs's own.
const HostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Files renders the unit files for name (e.g. "avalanche-agent") as NixOS's
// systemd-lib does: [Unit] from description/wants/after, [Service] from
// environment (PATH from `path`: each package's bin and sbin) and
// serviceConfig (booleans as true/false, lists as repeated keys), [Install]
// from wantedBy; and one .mount unit per mount, named from its path.
func (u Unit) Files(name string) map[string]string {
	files := map[string]string{name + ".service": u.Service.render()}
	for _, m := range u.Mounts {
		files[MountUnitName(m.Where)] = m.render()
	}
	return files
}

func (s Service) render() string {
	var b strings.Builder
	b.WriteString("[Unit]\n")
	line(&b, "Description", s.Description)
	for _, w := range s.Wants {
		line(&b, "Wants", w)
	}
	for _, a := range s.After {
		line(&b, "After", a)
	}
	b.WriteString("\n[Service]\n")
	env := map[string]string{}
	for k, v := range s.Environment {
		env[k] = v
	}
	var path []string
	for _, p := range s.Path {
		path = append(path, p+"/bin")
	}
	for _, p := range s.Path {
		path = append(path, p+"/sbin")
	}
	env["PATH"] = strings.Join(append(path, HostPath), ":")
	for _, k := range sortedKeys(env) {
		line(&b, "Environment", fmt.Sprintf("%q", k+"="+env[k]))
	}
	for _, k := range sortedKeys(s.ServiceConfig) {
		for _, v := range values(s.ServiceConfig[k]) {
			line(&b, k, v)
		}
	}
	if len(s.WantedBy) > 0 {
		b.WriteString("\n[Install]\n")
		for _, w := range s.WantedBy {
			line(&b, "WantedBy", w)
		}
	}
	return b.String()
}

func (m Mount) render() string {
	var b strings.Builder
	b.WriteString("[Unit]\n")
	for _, u := range m.Before {
		line(&b, "Before", u)
	}
	b.WriteString("\n[Mount]\n")
	line(&b, "What", m.What)
	line(&b, "Where", m.Where)
	line(&b, "Type", m.Type)
	line(&b, "Options", m.Options)
	if len(m.RequiredBy) > 0 { // NixOS links it into <unit>.requires/; enabling does the same
		b.WriteString("\n[Install]\n")
		for _, u := range m.RequiredBy {
			line(&b, "RequiredBy", u)
		}
	}
	return b.String()
}

// values turns a serviceConfig value into the unit file's value(s).
func values(v any) []string {
	switch v := v.(type) {
	case bool:
		if v {
			return []string{"true"}
		}
		return []string{"false"}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, values(e)...)
		}
		return out
	default:
		return []string{fmt.Sprint(v)}
	}
}

func line(b *strings.Builder, k, v string) {
	if v != "" {
		fmt.Fprintf(b, "%s=%s\n", k, v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MountUnitName is systemd's name for a mount unit at where
// (`systemd-escape --path --suffix=mount`).
func MountUnitName(where string) string {
	p := strings.Trim(where, "/")
	if p == "" {
		return "-.mount"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == ':':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + ".mount"
}
