package enrol

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Inventories written in ways the scanner must see through: strings and
// comments holding braces and semicolons, let … in, with …;, quoted names.
var trickyInventories = map[string]string{
	"plain": `{
  a = { system = "x86_64-linux"; hardware = "x86"; roles = [ ]; };
}
`,
	"let, comments and strings": `# a { comment } with ; and "quotes
let
  mk = roles: { system = "aarch64-linux"; hardware = "rpi4"; inherit roles; };
  /* block } comment ; */
  x = let y = "}"; in y;
in
{
  a = mk [ "server" ]; # trailing ; comment {
  "b-2" = mk [ "k3s-agent" ];
  c = with { r = [ "builder" ]; }; mk r;
  d = { system = "x86_64-linux"; hardware = ''x${"8"}6''; roles = [ "a;b" ]; };
}
`,
}

// TestInventoryEditsEvaluate adds a host to each inventory and removes one
// again; nix-instantiate proves each result is the old set plus or minus
// exactly that host.
func TestInventoryEditsEvaluate(t *testing.T) {
	requireNix(t)
	root := t.TempDir()
	ctx := context.Background()
	e := Entry{System: "aarch64-linux", Hardware: "rpi4", Roles: []string{"k3s-agent", "server"}}
	for name, src := range trickyInventories {
		t.Run(name, func(t *testing.T) {
			writeFile(t, root+"/"+InventoryFile, src)
			added, err := addEntry(src, "new-host", e)
			if err != nil {
				t.Fatalf("addEntry = %v", err)
			}
			if err := checkEdit(ctx, root, src, added, "new-host", &e); err != nil {
				t.Errorf("after addEntry: %v\n%s", err, added)
			}
			removed, err := removeEntry(added, "a")
			if err != nil {
				t.Fatalf("removeEntry(a) = %v", err)
			}
			if err := checkEdit(ctx, root, added, removed, "a", nil); err != nil {
				t.Errorf("after removeEntry: %v\n%s", err, removed)
			}
			back, err := removeEntry(added, "new-host")
			if err != nil || back != src {
				t.Errorf("removing the added host again = %v; want the original text back:\n%s", err, cmp.Diff(src, back))
			}
		})
	}
}

func TestInventoryEditErrors(t *testing.T) {
	for src, want := range map[string]string{
		`[ "not" "a" "set" ]`:           "it is not `{ … }` or `let … in { … }`",
		"{ a = 1; b = \"unterminated }": "unterminated string",
		"{ a = 1 }":                     "binding without a closing ;",
	} {
		if _, err := addEntry(src, "x", Entry{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("addEntry(%q) = %v; want %q", src, err, want)
		}
	}
	if _, err := removeEntry("{\n  a = 1; b = 2;\n}\n", "a"); err == nil || !strings.Contains(err.Error(), "shares a line") {
		t.Errorf("removeEntry(a on b's line) = %v; want a refusal", err)
	}
	if _, err := removeEntry("{\n  a = 1;\n}\n", "zz"); err == nil || !strings.Contains(err.Error(), `has no host "zz"`) {
		t.Errorf("removeEntry(zz) = %v; want no such host", err)
	}
}

// FuzzInventoryEdit: no input makes the scanner panic or loop.
func FuzzInventoryEdit(f *testing.F) {
	for _, src := range trickyInventories {
		f.Add(src)
	}
	f.Add("let a = ''x''${y}'''; in { a = \"\\\"}\"; }")
	f.Fuzz(func(t *testing.T, src string) {
		addEntry(src, "x", Entry{Roles: []string{"r"}})
		removeEntry(src, "a")
	})
}

// TestCheckEditCatchesOtherChanges: an edit that touches any other host,
// or any attribute, is refused before it is written.
func TestCheckEditCatchesOtherChanges(t *testing.T) {
	requireNix(t)
	root := t.TempDir()
	writeFile(t, root+"/"+InventoryFile, "{ }\n")
	old := "{\n  a = { system = \"x86_64-linux\"; hardware = \"x86\"; roles = [ ]; extra = 1; };\n}\n"
	e := Entry{System: "x86_64-linux", Hardware: "x86", Roles: []string{}}
	for name, edited := range map[string]string{
		"other host changed": "{\n  a = { system = \"x86_64-linux\"; hardware = \"x86\"; roles = [ ]; extra = 2; };\n  b = { system = \"x86_64-linux\"; hardware = \"x86\"; roles = [ ]; };\n}\n",
		"does not evaluate":  "{\n  a = { system = \"x86_64-linux\"; hardware = \"x86\"; roles = [ ]; extra = 1; };\n  b = { system = throw \"no\"; };\n}\n",
	} {
		err := checkEdit(context.Background(), root, old, edited, "b", &e)
		if err == nil || !strings.Contains(err.Error(), "nothing was written") {
			t.Errorf("checkEdit(%s) = %v; want a refusal", name, err)
		}
	}
}
