package release_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/release"
)

func TestFor(t *testing.T) {
	commit := strings.Repeat("c", 40)
	path := func(name string) string { return "/nix/store/" + strings.Repeat("0", 32) + "-" + name }
	rel := func(h release.Host) release.Release {
		return release.Release{Commit: commit, Builder: "cardinal", Hosts: map[string]release.Host{"raccoon": h}}
	}
	ok := release.Host{System: "aarch64-linux", OutPath: path("nixos-system-raccoon-24.05.20240101.abcdef")}
	self := release.Self{Output: "raccoon", System: "aarch64-linux"}
	tests := []struct {
		name   string
		rel    release.Release
		commit string
		self   release.Self
		class  error
		want   string
	}{
		{"own system", rel(ok), commit, self, nil, ""},
		{"plain name", rel(release.Host{System: "aarch64-linux", OutPath: path("nixos-system-raccoon")}), commit, self, nil, ""},
		{"another commit", rel(ok), strings.Repeat("d", 40), self, release.ErrInvalid, "not the verified commit dddd"},
		{"missing host", rel(ok), commit, release.Self{Output: "eagle", System: "aarch64-linux"}, release.ErrInvalid,
			`does not name host "eagle" (it names raccoon)`},
		{"commit does not evaluate", release.Release{Commit: commit, Error: "error: syntax error"}, commit, self,
			release.ErrFailed, "syntax error"},
		{"host failed on the builder", rel(release.Host{Error: "builder for '/nix/store/x.drv' failed"}), commit, self,
			release.ErrFailed, "for raccoon: builder for"},
		{"other system", rel(release.Host{System: "x86_64-linux", OutPath: ok.OutPath}), commit, self, release.ErrInvalid,
			"gives host \"raccoon\" a x86_64-linux system; this host is aarch64-linux"},
		{"another host's path", rel(release.Host{System: "aarch64-linux", OutPath: path("nixos-system-eagle-24.05")}), commit, self,
			release.ErrInvalid, "is not this host's system (want nixos-system-raccoon or nixos-system-raccoon-<version>)"},
		{"a longer host name's path", rel(release.Host{System: "aarch64-linux", OutPath: path("nixos-system-raccoon-00-24.05")}), commit, self,
			release.ErrInvalid, "is not this host's system"},
		{"not a store path", rel(release.Host{System: "aarch64-linux", OutPath: "/tmp/nixos-system-raccoon"}), commit, self,
			release.ErrInvalid, "is not a store path in /nix/store"},
		{"other store dir", rel(ok), commit, release.Self{Output: "raccoon", System: "aarch64-linux", StoreDir: "/gnu/store"},
			release.ErrInvalid, "not a store path in /gnu/store"},
		{"system.name differs from the output", rel(release.Host{System: "aarch64-linux", OutPath: path("nixos-system-pi-24.05")}), commit,
			release.Self{Output: "raccoon", System: "aarch64-linux", Name: "pi"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := tt.rel.For(tt.commit, tt.self)
			if tt.class == nil {
				if err != nil || h.OutPath == "" {
					t.Fatalf("For = %+v, %v; want the host entry", h, err)
				}
				return
			}
			if !errors.Is(err, tt.class) || !release.IsCommitFault(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("For = %v; want %v mentioning %q", err, tt.class, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	commit := strings.Repeat("a", 40)
	tests := []struct {
		name, doc, want string
	}{
		{"good", `{"version":1,"commit":"` + commit + `","builder":"b","time":"2026-01-01T00:00:00Z","hosts":{}}`, ""},
		{"unknown field", `{"version":1,"commit":"` + commit + `","hosts":{},"extra":1}`, `unknown field "extra"`},
		{"newer version", `{"version":2,"commit":"` + commit + `"}`, "version 2; this agent reads version 1"},
		{"short commit", `{"version":1,"commit":"abc"}`, `commit "abc" is not a full commit hash`},
		{"not json", `release`, "decoding release.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := release.Decode([]byte(tt.doc))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Decode = %v", err)
				}
				return
			}
			if !errors.Is(err, release.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode = %v; want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}
