// Package fleet implements `avalanche-agent fleet`: it asks every host of the
// inventory for its read-only status over the tailnet and shows, one line per
// host, what each runs, how far behind main it is and what went wrong.
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// InventoryFile is where the fleet's inventory lives, relative to the repository.
const InventoryFile = "nixos/lib/inventory.nix"

// Host is one machine to ask for its status.
type Host struct {
	Name string `json:"name"`
	// Address is the base URL of the host's status endpoint, such as
	// http://raccoon00.tailnet:9123. When empty, Query derives it from the
	// name, Options.Domain and Options.Port.
	Address string `json:"address,omitempty"`
}

// inventoryExpr projects the inventory to name -> { statusAddress }, so that
// evaluating it never forces anything else a host entry holds.
const inventoryExpr = `{ file }:
let
  i = import file;
  inv = if builtins.isFunction i then i { } else i;
in builtins.mapAttrs
  (name: h: { statusAddress = if builtins.isAttrs h then h.statusAddress or "" else ""; })
  inv`

// Inventory lists the hosts of the fleet in repoDir, in name order. It
// evaluates nixos/lib/inventory.nix with nix-instantiate; when nix-instantiate
// is not installed or the file does not exist, it lists the host directories
// instead (nixos/hosts/* and the cloud host).
func Inventory(ctx context.Context, repoDir string) ([]Host, error) {
	file, err := filepath.Abs(filepath.Join(repoDir, InventoryFile))
	if err != nil {
		return nil, fmt.Errorf("reading inventory: %w", err)
	}
	bin, lookErr := exec.LookPath("nix-instantiate")
	if _, err := os.Stat(file); lookErr != nil || errors.Is(err, fs.ErrNotExist) {
		return hostDirs(repoDir)
	}
	return evalInventory(ctx, bin, file)
}

func evalInventory(ctx context.Context, bin, file string) ([]Host, error) {
	argv := []string{bin, "--eval", "--strict", "--json", "--readonly-mode", "--argstr", "file", file, "-E", inventoryExpr}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("evaluating %s: %s: %w: %s", file, strings.Join(argv[:len(argv)-1], " "), err, tail(stderr.String(), 800))
	}
	var inv map[string]struct {
		StatusAddress string `json:"statusAddress"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &inv); err != nil {
		return nil, fmt.Errorf("decoding inventory %s: %w", file, err)
	}
	hosts := make([]Host, 0, len(inv))
	for name, h := range inv {
		hosts = append(hosts, Host{Name: name, Address: baseURL(h.StatusAddress)})
	}
	slices.SortFunc(hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	return hosts, nil
}

// baseURL accepts "host:port" as well as a URL.
func baseURL(addr string) string {
	if addr == "" || strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + strings.TrimRight(addr, "/")
}

var hostNameRE = regexp.MustCompile(`networking\.hostName\s*=\s*"([^"]+)"`)

// hostDirs lists nixos/hosts/* and the cloud host: each subdirectory of
// cloud/nixos, or the networking.hostName set by cloud/nixos/*.nix.
func hostDirs(repoDir string) ([]Host, error) {
	names, err := subdirs(filepath.Join(repoDir, "nixos", "hosts"))
	if err != nil {
		return nil, err
	}
	cloud := filepath.Join(repoDir, "cloud", "nixos")
	more, err := subdirs(cloud)
	if err != nil {
		return nil, err
	}
	if len(more) == 0 {
		more = cloudHostNames(cloud)
	}
	for _, n := range more {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("no hosts in %s: neither %s nor nixos/hosts/*", repoDir, InventoryFile)
	}
	hosts := make([]Host, len(names))
	for i, n := range names {
		hosts[i] = Host{Name: n}
	}
	return hosts, nil
}

func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing hosts: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func cloudHostNames(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.nix"))
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range hostNameRE.FindAllSubmatch(b, -1) {
			if n := string(m[1]); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
