package cloudcmd

import (
	"bytes"
	"fmt"
	"regexp"
	"text/template"
)

// Defaults for the nixos-infect route.
const (
	DefaultInfectURL = "https://raw.githubusercontent.com/elitak/nixos-infect/master/nixos-infect"
	DefaultChannel   = "nixos-25.05"
)

// UserDataOptions shape the cloud-init user data.
type UserDataOptions struct {
	InfectURL     string // nixos-infect script
	Channel       string // NIX_CHANNEL for nixos-infect
	Flake         string // optional flake ref switched to on the first NixOS boot
	AuthorizedKey string // recorded in the bootstrap config as root's key
}

// safe matches values that are pasted into YAML and Nix strings verbatim.
var safe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./#?&_~-]*$`)

var userDataTmpl = template.Must(template.New("user-data").Parse(`#cloud-config
# Written by avalanche-agent cloud provision-exit-node. nixos-infect turns
# this Debian server into NixOS in place and imports the bootstrap module
# below{{if .Flake}}, which switches once to {{.Flake}}: the
# fleet's exit-node configuration (cloud/nixos), whose avalanche-agent then
# keeps it up to date{{end}}.
write_files:
  - path: /etc/nixos/avalanche-bootstrap.nix
    permissions: "0644"
    content: |
      { pkgs, ... }: {
        nix.settings.experimental-features = [ "nix-command" "flakes" ];
        services.openssh.enable = true;
        services.openssh.settings.PasswordAuthentication = false;
        users.users.root.openssh.authorizedKeys.keys = [ "{{.AuthorizedKey}}" ];
{{- if .Flake}}
        systemd.services.avalanche-bootstrap = {
          wantedBy = [ "multi-user.target" ];
          after = [ "network-online.target" ];
          wants = [ "network-online.target" ];
          unitConfig.ConditionPathExists = "!/var/lib/avalanche-bootstrap.done";
          serviceConfig.Type = "oneshot";
          path = [ pkgs.nixos-rebuild pkgs.git pkgs.nix ];
          script = "nixos-rebuild switch --flake '{{.Flake}}' && touch /var/lib/avalanche-bootstrap.done";
        };
{{- end}}
      }
runcmd:
  - curl -fsSL '{{.InfectURL}}' | PROVIDER=hetznercloud NIX_CHANNEL={{.Channel}} NIXOS_IMPORT=./avalanche-bootstrap.nix bash -x 2>&1 | tee /var/log/nixos-infect.log
`))

// UserData renders the cloud-init user data for the nixos-infect route.
func UserData(o UserDataOptions) (string, error) {
	if o.InfectURL == "" {
		o.InfectURL = DefaultInfectURL
	}
	if o.Channel == "" {
		o.Channel = DefaultChannel
	}
	for name, v := range map[string]string{"--flake": o.Flake, "--nixos-infect-url": o.InfectURL, "--nix-channel": o.Channel} {
		if !safe.MatchString(v) {
			return "", fmt.Errorf("%w: %s %q has characters that are unsafe in user data", ErrUsage, name, v)
		}
	}
	if !regexp.MustCompile(`^[A-Za-z0-9@+=/ ._:-]*$`).MatchString(o.AuthorizedKey) {
		return "", fmt.Errorf("%w: the ssh public key has unexpected characters", ErrUsage)
	}
	var b bytes.Buffer
	if err := userDataTmpl.Execute(&b, o); err != nil {
		return "", fmt.Errorf("rendering user data: %w", err)
	}
	return b.String(), nil
}
