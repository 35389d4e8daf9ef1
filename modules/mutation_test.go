package modules

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each regression this fleet met on nixos-unstable, put back on purpose in a
// scratch copy, must fail the host evaluation with a message that says what
// to do: proof that TestHostsEvaluate would catch it.
func TestHostEvaluationCatchesRegressions(t *testing.T) {
	tests := []struct {
		name      string
		file      string // relative to the repository
		old, new  string
		host      string
		wantError []string // substrings of the evaluation error
		wantWarn  string   // or: a substring of one warning
	}{
		{
			name:      "journald extraConfig (removed)",
			file:      "nixos/profiles/hw-rpi4.nix",
			old:       `services.journald.settings.Journal.SystemMaxUse = "256M";`,
			new:       `services.journald.extraConfig = "SystemMaxUse=256M";`,
			host:      "raccoon00",
			wantError: []string{"The option definition `services.journald.extraConfig' in", "nixos/profiles/hw-rpi4.nix", "Use services.journald.settings.Journal instead."},
		},
		{
			name:     "harmonia's flat options (renamed)",
			file:     "nixos/profiles/role-binary-cache.nix",
			old:      "services.harmonia.cache = {",
			new:      "services.harmonia = {",
			host:     "possum",
			wantWarn: "The option `services.harmonia.enable' defined in",
		},
		{
			name:      "grafana without secret_key",
			file:      "nixos/hosts/beacon/default.nix",
			old:       `settings.security.secret_key = "$__file{${s.grafana-secret-key.path}}";`,
			host:      "beacon",
			wantError: []string{"services.grafana.settings.security.secret_key has no default"},
		},
		{
			name:      "calypso allows no unfree package",
			file:      "nixos/hosts/calypso/default.nix",
			old:       `"nvidia-x11"`,
			new:       `"nvidia-x11-typo"`,
			host:      "calypso",
			wantError: []string{"nvidia-x11 is unfree and not allowed"},
		},
		{
			name:      "secret owned by harmonia's dynamic user",
			file:      "nixos/profiles/role-binary-cache.nix",
			old:       `key = "harmonia/sign-key";`,
			new:       `key = "harmonia/sign-key"; owner = "harmonia";`,
			host:      "possum",
			wantError: []string{"harmonia-sign-key: owner harmonia", "DynamicUser"},
		},
		{
			name:      "untrusted ssh-ng upload user",
			file:      "nixos/profiles/role-binary-cache.nix",
			old:       "trusted = true;",
			new:       "write = true;",
			host:      "possum",
			wantError: []string{"nix.sshServe.write does nothing with protocol ssh-ng", "without trusted = true"},
		},
		{
			name:      "kanidm person named admin",
			file:      "nixos/hosts/mysecrets/default.nix",
			old:       "persons.fleetadmin = {",
			new:       "persons.admin = {",
			host:      "mysecrets",
			wantError: []string{"persons.admin: admin is one of Kanidm's built-in accounts"},
		},
		{
			name:      "garage data dir on the dynamic user",
			file:      "nixos/hosts/possum/default.nix",
			old:       "DynamicUser = false;",
			host:      "possum",
			wantError: []string{"services.garage: /srv/data/garage is outside /var/lib/garage"},
		},
		{
			name:      "a file the configuration names is missing",
			file:      "nixos/hosts/mysecrets/default.nix",
			old:       "./internal.zone",
			new:       "./internal-typo.zone",
			host:      "mysecrets",
			wantError: []string{"files the configuration names do not exist", "nixos/hosts/mysecrets/internal-typo.zone"},
		},
		{
			name:      "type error in our own option",
			file:      "nixos/profiles/role-workstation.nix",
			old:       `pollInterval = lib.mkDefault "15m";`,
			new:       `pollInterval = lib.mkDefault "every quarter hour";`,
			host:      "calypso",
			wantError: []string{"services.avalanche-agent.pollInterval", "is not of type"},
		},
		{
			name:      "broken import",
			file:      "nixos/profiles/hw-hetzner-cloud.nix",
			old:       `"/profiles/qemu-guest.nix"`,
			new:       `"/profiles/qemu-guest-typo.nix"`,
			host:      "exit-node",
			wantError: []string{"qemu-guest-typo.nix"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFleet(t)
			f.writeSecrets(t, []string{tt.host})
			f.edit(t, tt.file, tt.old, tt.new)
			var r report
			err := f.eval(fmt.Sprintf("report %q", tt.host), &r)
			if tt.wantWarn != "" {
				if err != nil || !strings.Contains(strings.Join(r.Warnings, "\n"), tt.wantWarn) {
					t.Fatalf("%s after the edit: error %v, warnings %q; want a warning mentioning %q", tt.host, err, r.Warnings, tt.wantWarn)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s evaluates after the edit of %s; want an error mentioning %q", tt.host, tt.file, tt.wantError)
			}
			for _, want := range tt.wantError {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s after the edit: %v\nwant it to mention %q", tt.host, err, want)
				}
			}
		})
	}
}

// A fresh clone has no secrets files: evaluation must stop with a message
// naming the missing file, what reads it, and the command that creates it,
// not with Nix's "getting status of …: No such file or directory".
func TestMissingSecretsFileIsExplained(t *testing.T) {
	f := newFleet(t)
	f.writeSecrets(t, []string{"possum"})
	if err := os.Remove(filepath.Join(f.dir, "secrets", "nixos", "possum", "secrets.yaml")); err != nil {
		t.Fatal(err)
	}
	var r report
	err := f.eval(`report "possum"`, &r)
	if err == nil {
		t.Fatal("possum evaluates without its secrets file; want an error")
	}
	for _, want := range []string{
		"Failed assertions:",
		"services.avalanche-agent.secrets: secrets/nixos/possum/secrets.yaml does not exist",
		"garage-env (key garage/env), harmonia-sign-key (key harmonia/sign-key)",
		"just add-host possum",
		"avalanche-agent add-host possum --system … --hardware … --roles … --ssh-host-key FILE",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("possum without secrets: %v\nwant it to mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "getting status of") {
		t.Errorf("possum without secrets fails with Nix's raw error, not the explanation: %v", err)
	}
}

// The dev shell and formatter fail to evaluate with a deprecated package
// name (upstream.nix's removedPackages), as they would on nixos-unstable.
func TestFlakeOutputsCatchDeprecatedPackages(t *testing.T) {
	f := newFleet(t)
	f.edit(t, "flake.nix", "formatter = forAllSystems (pkgs: pkgs.nixfmt);", "formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);")
	var out any
	err := f.eval("flakeOutputs", &out)
	if err == nil || !strings.Contains(err.Error(), "nixfmt-rfc-style is deprecated: use nixfmt") {
		t.Errorf("flake outputs with pkgs.nixfmt-rfc-style: %v; want the deprecation message", err)
	}
}
