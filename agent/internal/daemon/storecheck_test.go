package daemon_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
