package daemon_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// TestStoreCheckAfterUncleanShutdown damages the running system's files
// as a power cut does (Nix still calls the path valid) and starts the
// agent again: after a boot that ended without the agent stopping, the
// store is verified and repaired and the system activated again; after a
// clean stop, or a kill within the same boot, nothing is read.
func TestStoreCheckAfterUncleanShutdown(t *testing.T) {
	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	const manifest = "etc/avalanche-agent/secrets.json"
	tests := []struct {
		name      string
		record    map[string]any // run.json as the previous run left it
		damage    string         // the file of the running system emptied
		wantStore string
	}{
		{"power cut", map[string]any{"bootId": "an-earlier-boot", "clean": false}, "marker",
			"store damaged after an unclean shutdown: 1 paths, repaired"},
		{"clean stop, then a reboot", map[string]any{"bootId": "an-earlier-boot", "clean": true}, "marker", ""},
		{"agent killed, same boot", map[string]any{"bootId": strings.TrimSpace(string(bootID)), "clean": false}, "marker", ""},
		{"the secrets manifest reads empty", map[string]any{"bootId": "an-earlier-boot", "clean": true}, manifest,
			"store damaged after the running system's files read empty: 1 paths, repaired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, nil)
			h.opts.SecretsManifest = `{"version": 1, "secrets": []}` // read by nobody here: no secrets configured
			commit := h.commit("first", nil)
			h.start()
			h.stop()
			b, _ := json.Marshal(tt.record)
			if err := os.WriteFile(filepath.Join(h.cfg.StateDir, "run.json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			damaged := filepath.Join(currentTarget(t, h.current), tt.damage)
			want, _ := os.ReadFile(damaged)
			if err := os.Truncate(damaged, 0); err != nil {
				t.Fatal(err)
			}
			acts := len(h.activations())
			h.start()
			s := h.status()
			if s.Store != tt.wantStore {
				t.Errorf("status.Store = %q; want %q", s.Store, tt.wantStore)
			}
			got, _ := os.ReadFile(damaged)
			repaired := tt.wantStore != ""
			if (string(got) == string(want)) != repaired {
				t.Errorf("%s holds %q after the start; repaired: %v", tt.damage, got, repaired)
			}
			if n := len(h.activations()) - acts; (n == 1) != repaired {
				t.Errorf("%d activations at start-up; want one only after a repair", n)
			}
			if s.Deployed == nil || s.Deployed.Commit != commit || len(s.Refused) > 0 || s.LastError != "" {
				t.Errorf("status = deployed %+v, refused %v, error %q; want %s, nothing refused, no error", s.Deployed, s.Refused, s.LastError, commit)
			}
		})
	}
}

// TestStoreCheckRecentPaths: the power went while a new commit was being
// evaluated, after Nix had registered the commit's source in the store and
// before its files reached the disk. No system's closure lists that source
// yet; the next evaluation would read the empty flake.nix as the commit
// being broken and refuse it. What Nix registered since the last sync is
// verified too, the damaged source goes, and the commit deploys.
func TestStoreCheckRecentPaths(t *testing.T) {
	h := newHost(t, nil)
	h.opts.SecretsManifest = `{"version": 1, "secrets": []}`
	h.commit("first", nil)
	h.start()
	h.stop()
	// The agent checks from its clock margin (10 minutes) before the last
	// sync; a sync recorded that far ahead puts only the last seconds in
	// the window, not every path the tests running beside this one
	// registered in the shared store.
	syncedAt := time.Now().Add(10*time.Minute - 2*time.Second).Unix()
	h.opts.Marker = "second"
	second := h.commit("second", nil)
	out, err := exec.Command("nix", append(nixtest.Args(), "--extra-experimental-features", "nix-command flakes",
		"flake", "metadata", "--json", "git+file://"+h.up.Bare+"?ref=main&rev="+second)...).Output()
	if err != nil {
		t.Fatalf("nix flake metadata: %v", err)
	}
	var meta struct{ Path string }
	if err := json.Unmarshal(out, &meta); err != nil || meta.Path == "" {
		t.Fatalf("nix flake metadata said %s (%v)", out, err)
	}
	if err := os.Truncate(filepath.Join(meta.Path, "flake.nix"), 0); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"bootId": "an-earlier-boot", "clean": false, "syncedAt": syncedAt})
	if err := os.WriteFile(filepath.Join(h.cfg.StateDir, "run.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()
	s := h.status()
	if s.Deployed == nil || s.Deployed.Commit != second || len(s.Refused) > 0 || !strings.HasPrefix(s.Store, "store damaged after an unclean shutdown") {
		t.Errorf("status = deployed %+v, refused %v, store %q; want %s deployed after the store's repair", s.Deployed, s.Refused, s.Store, second)
	}
}
