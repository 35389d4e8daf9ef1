package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteTable(t *testing.T) {
	rows := []Row{
		{Host: "eagle", Reachable: true, Commit: "8f3c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f7a", Behind: 0, State: "idle"},
		{Host: "raccoon00", Reachable: true, Commit: "1234567890abcdef1234567890abcdef12345678", Behind: 3, State: "failed",
			LastError: "building nixosConfigurations.raccoon00:\n  builder for '/nix/store/abc-foo.drv' failed", RebootNeeded: true},
		{Host: "opi01", Reachable: true, Commit: "0123456789abcdef0123456789abcdef01234567", Behind: -1, State: "building"},
		{Host: "vps", Reachable: true, State: "fetching", Behind: -1},
		{Host: "possum", Err: "connection refused", Behind: -1},
		{Host: "beacon", Err: "no answer within 5s", Behind: -1},
	}
	want := `HOST       COMMIT        BEHIND  STATE        REBOOT  LAST ERROR
eagle      8f3c2a1b9d0e  0       idle         no      -
raccoon00  1234567890ab  3       failed       yes     building nixosConfigurations.raccoon00: builder...
opi01      0123456789ab  ?       building     no      -
vps        -             ?       fetching     no      -
possum     -             -       unreachable  -       connection refused
beacon     -             -       unreachable  -       no answer within 5s
`
	var b bytes.Buffer
	if err := WriteTable(&b, rows); err != nil {
		t.Fatalf("WriteTable() = %v", err)
	}
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteTable() (-want +got):\n%s", diff)
	}
}

func writeHosts(t *testing.T, hosts []Host) string {
	t.Helper()
	b, err := json.Marshal(hosts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hosts.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunJSON(t *testing.T) {
	dir, ids := gitRepo(t)
	hosts, want := fleet20(t, ids)
	var stdout, stderr bytes.Buffer
	args := []string{"--repo", dir, "--hosts-file", writeHosts(t, hosts), "--timeout", "500ms", "--json"}
	if err := Run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("Run(%q) = %v; stderr: %s", args, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("Run(%q) wrote to stderr: %s", args, stderr.String())
	}
	var got []Row
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("decoding Run output: %v\n%s", err, stdout.String())
	}
	checkRows(t, got, want)
}

func TestRunTable(t *testing.T) {
	dir, ids := gitRepo(t)
	hosts, want := fleet20(t, ids)
	var stdout, stderr bytes.Buffer
	args := []string{"--repo", dir, "--hosts-file", writeHosts(t, hosts), "--timeout", "500ms"}
	if err := Run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("Run(%q) = %v; stderr: %s", args, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != len(want)+1 {
		t.Fatalf("Run printed %d lines; want a header and %d hosts:\n%s", len(lines), len(want), stdout.String())
	}
	col := strings.Index(lines[0], "BEHIND")
	for i, w := range want {
		line := lines[i+1]
		f := strings.Fields(line)
		wantCells := cells(w)
		if f[0] != w.Host || f[1] != wantCells[1] || f[2] != wantCells[2] || f[3] != wantCells[3] || f[4] != wantCells[4] {
			t.Errorf("line %d = %q; want host, commit, behind, state, reboot = %q", i+1, line, wantCells[:5])
		}
		if len(line) <= col || line[col-1] != ' ' || line[col] == ' ' {
			t.Errorf("line %d = %q; BEHIND column not aligned at %d", i+1, line, col)
		}
	}
	t.Logf("\n%s", stdout.String())
}

func TestRunWithoutGitRepository(t *testing.T) {
	hosts, _ := fleet20(t, map[string]string{})
	var stdout, stderr bytes.Buffer
	args := []string{"--repo", t.TempDir(), "--hosts-file", writeHosts(t, hosts[:2]), "--json"}
	if err := Run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("Run(%q) = %v", args, err)
	}
	if !strings.Contains(stderr.String(), "commits behind main unknown") {
		t.Errorf("Run(%q) stderr = %q; want a note that behind counts are unknown", args, stderr.String())
	}
	var rows []Row
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil || len(rows) != 2 || rows[0].Behind != -1 {
		t.Errorf("Run(%q) = %s (%v); want 2 rows with behind -1", args, stdout.String(), err)
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--nosuch"}, {"extra"}, {"--hosts-file", "/nonexistent/hosts.json"}} {
		var stdout, stderr bytes.Buffer
		if err := Run(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("Run(%q) = nil; want an error", args)
		}
	}
}

const inventoryNix = `let
  mk = system: roles: { inherit system roles; hardware = "rpi4"; };
in {
  raccoon00 = mk "aarch64-linux" [ "k3s-worker" ];
  eagle = mk "aarch64-linux" [ "forgejo" ] // { statusAddress = "eagle.internal:9200"; };
  vps = mk "x86_64-linux" [ ] // { statusAddress = "http://100.64.0.9:9123/"; };
  # evaluating this would fail: only names and statusAddress are forced
  broken = { system = throw "not forced"; };
}
`

func TestInventoryWithNix(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatalf("nix-instantiate is needed (apt-get install nix-bin; .ci/install does): %v", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, InventoryFile), inventoryNix)
	got, err := Inventory(context.Background(), dir)
	if err != nil {
		t.Fatalf("Inventory(%q) = %v", dir, err)
	}
	want := []Host{
		{Name: "broken"},
		{Name: "eagle", Address: "http://eagle.internal:9200"},
		{Name: "raccoon00"},
		{Name: "vps", Address: "http://100.64.0.9:9123"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Inventory(%q) (-want +got):\n%s", dir, diff)
	}

	writeFile(t, filepath.Join(dir, InventoryFile), "{ eagle = ; }")
	if _, err := Inventory(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "nix-instantiate") {
		t.Errorf("Inventory of a broken file = %v; want an error naming nix-instantiate", err)
	}
}

func TestInventoryWithoutNix(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no nix-instantiate
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, InventoryFile), inventoryNix)
	for _, h := range []string{"raccoon01", "eagle", "raccoon00"} {
		writeFile(t, filepath.Join(dir, "nixos", "hosts", h, "default.nix"), "{ }")
	}
	writeFile(t, filepath.Join(dir, "cloud", "nixos", "configuration.nix"), `{ networking.hostName = "exit-vps"; }`)
	got, err := Inventory(context.Background(), dir)
	if err != nil {
		t.Fatalf("Inventory(%q) = %v", dir, err)
	}
	want := []Host{{Name: "eagle"}, {Name: "exit-vps"}, {Name: "raccoon00"}, {Name: "raccoon01"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Inventory(%q) without nix (-want +got):\n%s", dir, diff)
	}
	if _, err := Inventory(context.Background(), t.TempDir()); err == nil {
		t.Errorf("Inventory(empty dir) = nil error; want one")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
