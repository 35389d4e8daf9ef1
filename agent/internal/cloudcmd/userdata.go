package cloudcmd

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"unicode/utf8"
)

// The nixos-infect the VPS runs, pinned: a commit of elitak/nixos-infect
// and the sha256 of its nixos-infect script at that commit. The user data
// downloads it, checks the sum and only then runs it as root; a moving
// branch piped into a shell would run whatever the branch holds that day.
// To move the pin, take the new commit's script and its `sha256sum`.
const (
	DefaultInfectCommit = "7563801d3ae68c975e4027f4e31a3906dca95f30"
	DefaultInfectSHA256 = "4cc3b5f8e4333ab4f02906d80a836c1b36e2887a51abf4eba4d9113b33934393"
	DefaultInfectURL    = "https://raw.githubusercontent.com/elitak/nixos-infect/" + DefaultInfectCommit + "/nixos-infect"
	DefaultChannel      = "nixos-25.05"
)

// installScript is where the user data writes the script that fetches,
// checks and runs nixos-infect.
const installScript = "/root/avalanche-install-nixos.sh"

// UserDataOptions shape the cloud-init user data.
type UserDataOptions struct {
	InfectURL    string // nixos-infect script, https only
	InfectSHA256 string // its sha256 (hex); required with a non-default InfectURL
	Channel      string // NIX_CHANNEL for nixos-infect
	Flake        string // optional flake ref switched to on the first NixOS boot; must pin rev=

	AuthorizedKey string // recorded in the bootstrap config as root's key
}

// userDataTmpl is YAML holding a Nix file and a bash script. Every value
// reaches them through nix (a Nix string literal) or sh (a bash word), both
// single-line, so no value can end a YAML block, a Nix string or a shell
// word early.
var userDataTmpl = template.Must(template.New("user-data").Funcs(template.FuncMap{"nix": nixString, "sh": shellWord}).Parse(`#cloud-config
# Written by avalanche-agent cloud provision-exit-node. The script below
# downloads nixos-infect at a pinned commit, checks its sha256 and runs it:
# it turns this Debian server into NixOS in place and imports the bootstrap
# module{{if .Flake}}, which switches once to the fleet's exit-node
# configuration (cloud/nixos), whose avalanche-agent then keeps it up to
# date{{end}}.
write_files:
  - path: /etc/nixos/avalanche-bootstrap.nix
    permissions: "0644"
    content: |
      { pkgs, ... }: {
        nix.settings.experimental-features = [ "nix-command" "flakes" ];
        services.openssh.enable = true;
        services.openssh.settings.PasswordAuthentication = false;
        users.users.root.openssh.authorizedKeys.keys = [ {{nix .AuthorizedKey}} ];
{{- if .Flake}}
        systemd.services.avalanche-bootstrap = {
          wantedBy = [ "multi-user.target" ];
          after = [ "network-online.target" ];
          wants = [ "network-online.target" ];
          unitConfig.ConditionPathExists = "!/var/lib/avalanche-bootstrap.done";
          serviceConfig.Type = "oneshot";
          path = [ pkgs.nixos-rebuild pkgs.git pkgs.nix ];
          script = {{nix (printf "nixos-rebuild switch --flake %s && touch /var/lib/avalanche-bootstrap.done" (sh .Flake))}};
        };
{{- end}}
      }
  - path: ` + installScript + `
    permissions: "0700"
    content: |
      #!/usr/bin/env bash
      set -euo pipefail
      infect_url={{sh .InfectURL}}
      infect_sha256={{sh .InfectSHA256}}
      nix_channel={{sh .Channel}}
      installer=$(mktemp)
      curl -fsSL --proto '=https' -o "$installer" "$infect_url"
      got=$(sha256sum "$installer" | cut -d ' ' -f 1)
      if [ "$got" != "$infect_sha256" ]; then
        echo "nixos-infect from $infect_url has sha256 $got, not the pinned $infect_sha256: not running it" >&2
        exit 1
      fi
      PROVIDER=hetznercloud NIX_CHANNEL="$nix_channel" NIXOS_IMPORT=./avalanche-bootstrap.nix bash -x "$installer"
runcmd:
  - [ bash, ` + installScript + ` ]
`))

// UserData renders the cloud-init user data for the nixos-infect route.
func UserData(o UserDataOptions) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := userDataTmpl.Execute(&b, o); err != nil {
		return "", fmt.Errorf("rendering user data: %w", err)
	}
	return b.String(), nil
}

// check fills defaults and refuses what cannot be pinned or carried.
func (o *UserDataOptions) check() error {
	if o.InfectURL == "" {
		o.InfectURL = DefaultInfectURL
	}
	if o.InfectSHA256 == "" && o.InfectURL == DefaultInfectURL {
		o.InfectSHA256 = DefaultInfectSHA256
	}
	if o.Channel == "" {
		o.Channel = DefaultChannel
	}
	if u, err := url.Parse(o.InfectURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%w: --nixos-infect-url %q must be an https URL", ErrUsage, o.InfectURL)
	}
	if o.InfectSHA256 == "" {
		return fmt.Errorf("%w: --nixos-infect-url needs --nixos-infect-sha256: the installer runs as root, pin its content", ErrUsage)
	}
	o.InfectSHA256 = strings.ToLower(o.InfectSHA256)
	if b, err := hex.DecodeString(o.InfectSHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("%w: --nixos-infect-sha256 %q is not a sha256 (64 hex digits)", ErrUsage, o.InfectSHA256)
	}
	if strings.ContainsAny(o.AuthorizedKey, "\r\n") {
		return fmt.Errorf("%w: the ssh public key file must hold one key on one line", ErrUsage)
	}
	if o.Flake != "" {
		if _, err := FlakeRev(o.Flake); err != nil {
			return err
		}
	}
	for name, v := range map[string]string{"--flake": o.Flake, "--nix-channel": o.Channel, "the ssh public key": o.AuthorizedKey} {
		if err := carriable(v); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrUsage, name, v, err)
		}
	}
	return nil
}

// carriable refuses what neither YAML nor a Nix string can hold as text:
// invalid UTF-8 and control characters other than newline and tab.
func carriable(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	for i, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f {
			return fmt.Errorf("has control character %U at byte %d", r, i)
		}
	}
	return nil
}

// nixString returns s as a Nix double-quoted string literal on one line.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// shellWord returns s as one bash word on one line: $'...' with every
// byte outside printable ASCII, the backslash and the quote escaped.
func shellWord(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// FlakeRev returns the full commit hash a flake reference pins with its
// rev= parameter. The bootstrap switches to the reference as root before
// any agent runs: a branch tip would be whatever the branch holds that day,
// so a reference without a full commit hash is refused.
func FlakeRev(ref string) (string, error) {
	loc, _, _ := strings.Cut(ref, "#")
	_, query, _ := strings.Cut(loc, "?")
	params, err := url.ParseQuery(query)
	rev := params.Get("rev")
	if err != nil || rev == "" {
		return "", fmt.Errorf("%w: --flake %q does not pin a commit: add ?rev=<full commit hash> "+
			"(e.g. git+https://git.example/fleet/avalanche?rev=<sha>#vps), a commit verified with --allowed-signers", ErrUsage, ref)
	}
	if b, err := hex.DecodeString(rev); err != nil || (len(b) != 20 && len(b) != 32) {
		return "", fmt.Errorf("%w: --flake rev %q is not a full commit hash (40 or 64 hex digits)", ErrUsage, rev)
	}
	return strings.ToLower(rev), nil
}
