package enrol

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
)

// InventoryFile is the fleet's host inventory, relative to the repository.
const InventoryFile = "nixos/lib/inventory.nix"

// Entry is one host of the inventory as it evaluates.
type Entry struct {
	System   string   `json:"system"`
	Hardware string   `json:"hardware"`
	Roles    []string `json:"roles"`
	Dir      string   `json:"dir,omitempty"`
}

var nixIdentRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_'-]*$`)

var nixKeywords = []string{"assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"}

// nixName writes an attribute name, quoted when it is not an identifier.
func nixName(name string) string {
	if nixIdentRE.MatchString(name) && !slices.Contains(nixKeywords, name) {
		return name
	}
	b, _ := json.Marshal(name) // host names have no $ or \: a JSON string is a Nix string
	return string(b)
}

// addEntry appends `name = { system; hardware; roles; };` as the last
// binding of the inventory's attribute set, indented like its bindings and
// formatted as nixfmt formats it.
func addEntry(src, name string, e Entry) (string, error) {
	_, close, bs, err := topLevelSet(src)
	if err != nil {
		return "", fmt.Errorf("%s: %w", InventoryFile, err)
	}
	indent := "  "
	if len(bs) > 0 {
		indent = lineIndent(src, bs[0].start)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s%s = {\n", indent, nixName(name))
	fmt.Fprintf(&b, "%s  system = %q;\n%s  hardware = %q;\n", indent, e.System, indent, e.Hardware)
	switch len(e.Roles) {
	case 0:
		fmt.Fprintf(&b, "%s  roles = [ ];\n", indent)
	case 1:
		fmt.Fprintf(&b, "%s  roles = [ %q ];\n", indent, e.Roles[0])
	default:
		fmt.Fprintf(&b, "%s  roles = [\n", indent)
		for _, r := range e.Roles {
			fmt.Fprintf(&b, "%s    %q\n", indent, r)
		}
		fmt.Fprintf(&b, "%s  ];\n", indent)
	}
	fmt.Fprintf(&b, "%s};\n", indent)
	at := lineStart(src, close)
	if strings.TrimSpace(src[at:close]) != "" {
		return "", fmt.Errorf("%s: the closing } of the host set shares its line with other text", InventoryFile)
	}
	return src[:at] + b.String() + src[at:], nil
}

// removeEntry deletes the binding of name, the comment lines right above
// it and one blank line, so the file reads as if the host was never there.
func removeEntry(src, name string) (string, error) {
	_, _, bs, err := topLevelSet(src)
	if err != nil {
		return "", fmt.Errorf("%s: %w", InventoryFile, err)
	}
	i := slices.IndexFunc(bs, func(b binding) bool { return b.name == name })
	if i < 0 {
		return "", fmt.Errorf("%s has no host %q", InventoryFile, name)
	}
	from, to := lineStart(src, bs[i].start), lineEnd(src, bs[i].end)
	if strings.TrimSpace(src[from:bs[i].start]) != "" || strings.TrimSpace(stripComment(src[bs[i].end:to])) != "" {
		return "", fmt.Errorf("%s: %s shares a line with other text; remove it by hand", InventoryFile, name)
	}
	for from > 0 {
		prev := lineStart(src, from-1)
		if !strings.HasPrefix(strings.TrimSpace(src[prev:from]), "#") {
			break
		}
		from = prev
	}
	if from > 0 && strings.TrimSpace(src[lineStart(src, from-1):from]) == "" {
		from = lineStart(src, from-1) // the blank line that separated it
	}
	return src[:from] + src[to:], nil
}

func stripComment(s string) string {
	if i := strings.Index(s, "#"); i >= 0 {
		return s[:i]
	}
	return s
}

func lineStart(s string, i int) int { return strings.LastIndexByte(s[:i], '\n') + 1 }

func lineEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(s)
}

func lineIndent(s string, i int) string {
	ls := lineStart(s, i)
	return s[ls : ls+len(s[ls:])-len(strings.TrimLeft(s[ls:], " \t"))]
}

// evalInventory evaluates an inventory text with nix-instantiate, written
// next to the real file so relative paths in it keep their meaning. Each
// host is kept as JSON decodes it, every attribute of it.
func evalInventory(ctx context.Context, root, src string) (map[string]any, error) {
	dir := filepath.Join(root, filepath.Dir(InventoryFile))
	f, err := os.CreateTemp(dir, ".inventory-check-*.nix")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(src); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	argv := []string{"nix-instantiate", "--eval", "--strict", "--json", "--readonly-mode", f.Name()}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(stderr.String()))
	}
	var inv map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &inv); err != nil {
		return nil, fmt.Errorf("%s does not evaluate to a set of hosts: %w", InventoryFile, err)
	}
	return inv, nil
}

// checkEdit proves an edited inventory evaluates to the old one with only
// name changed: added as want, or removed when want is nil.
func checkEdit(ctx context.Context, root, oldSrc, newSrc, name string, want *Entry) error {
	before, err := evalInventory(ctx, root, oldSrc)
	if err != nil {
		return err
	}
	after, err := evalInventory(ctx, root, newSrc)
	if err != nil {
		return fmt.Errorf("the edited inventory does not evaluate (nothing was written): %w", err)
	}
	delete(before, name)
	if want != nil {
		b, _ := json.Marshal(want)
		var v any
		json.Unmarshal(b, &v)
		before[name] = v
	}
	if diff := cmp.Diff(before, after); diff != "" {
		return fmt.Errorf("the edited %s evaluates to something else than intended (nothing was written); edit it by hand (-want +got):\n%s", InventoryFile, diff)
	}
	return nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// entryOf reads one evaluated host as an Entry.
func entryOf(v any) Entry {
	var e Entry
	b, _ := json.Marshal(v)
	json.Unmarshal(b, &e)
	return e
}
