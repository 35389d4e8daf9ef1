# What NixOS (nixos-unstable) removed or renamed, that a stub cannot know.
#
# The host-evaluation test (modules/hosts_test.go) replaces NixOS's own
# option declarations with free-form stubs, so a definition of an option
# that NixOS no longer has would pass unnoticed. Each entry here turns one
# such upstream change back into the error or warning NixOS gives. Add an
# entry when nixpkgs removes or renames something the fleet used, after
# checking the module that declares it (the comment says where).
{
  # option path -> replacement instructions, as lib.mkRemovedOptionModule
  # prints them (NixOS: an assertion, so evaluation fails).
  removedOptions = {
    # nixos/modules/system/boot/systemd/journald.nix
    "services.journald.extraConfig" = "Use services.journald.settings.Journal instead.";
    "services.journald.console" =
      "Use services.journald.settings.Journal.ForwardToConsole and services.journald.settings.Journal.TTYPath instead.";
    # removed in 26.05 with the Bash nixos-rebuild: nixos-rebuild-ng is the only one
    "system.rebuild.enableNg" = "nixos-rebuild is nixos-rebuild-ng now; remove the option.";
  };

  # old option path -> new one (NixOS: lib.mkRenamedOptionModule, a warning;
  # the test fails on warnings too).
  renamedOptions = {
    # nixos/modules/services/networking/harmonia.nix
    "services.harmonia.enable" = "services.harmonia.cache.enable";
    "services.harmonia.signKeyPath" = "services.harmonia.cache.signKeyPath";
    "services.harmonia.signKeyPaths" = "services.harmonia.cache.signKeyPaths";
    "services.harmonia.settings" = "services.harmonia.cache.settings";
    # nixos/modules/system/boot/systemd/journald.nix
    "services.journald.storage" = "services.journald.settings.Journal.Storage";
    "services.journald.rateLimitInterval" = "services.journald.settings.Journal.RateLimitIntervalSec";
    "services.journald.rateLimitBurst" = "services.journald.settings.Journal.RateLimitBurst";
    "services.journald.forwardToSyslog" = "services.journald.settings.Journal.ForwardToSyslog";
    "services.journald.audit" = "services.journald.settings.Journal.Audit";
  };

  # pkgs attribute -> what to use (pkgs/top-level/aliases.nix: deprecated
  # or removed names; using one fails the test with this message).
  removedPackages = {
    nixfmt-rfc-style = "nixfmt-rfc-style is deprecated: use nixfmt (it is the RFC 166 style now).";
  };

  # Names a provisioned Kanidm person cannot take: the accounts the server
  # creates itself (Kanidm book, "Default Accounts and Groups"); the NixOS
  # module recovers admin and idm_admin with adminPasswordFile and
  # idmAdminPasswordFile.
  kanidmBuiltinAccounts = [
    "admin"
    "idm_admin"
    "anonymous"
  ];

  # Services whose user exists only while they run (DynamicUser=), so no
  # file can be given to it beforehand: nixos/modules/services/networking/
  # harmonia.nix, nixos/modules/services/web-servers/garage.nix (unless the
  # host turns DynamicUser off and declares the user).
  dynamicUsers = [
    "harmonia"
    "garage"
  ];

  # Unfree packages an option pulls in (pname as lib.getName reports it).
  unfreeFor = {
    steam = [
      "steam"
      "steam-unwrapped"
    ];
    nvidia = [
      "nvidia-x11"
      "nvidia-settings"
    ];
  };
}
