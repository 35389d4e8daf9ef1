# Everything every host gets: the agent, Nix settings, the fleet binary cache,
# SSH, the admin user, tailscale. Hosts and roles override with plain option
# assignments (lib.mkDefault here where they are expected to).
{
  lib,
  pkgs,
  host,
  ...
}:
let
  keys = import ../lib/keys.nix;
  fleetCache = import ../lib/fleet-cache.nix;
  k3sNode = builtins.elem "k3s-server" host.roles || builtins.elem "k3s-agent" host.roles;
  rollout = import ../lib/rollout.nix;
  waves = import ../lib/waves.nix {
    inventory = import ../lib/inventory.nix;
    policy = rollout;
  };
in
{
  services.avalanche-agent = {
    enable = true;
    # The repository lives on eagle (Forgejo). Each host reads it with its SSH
    # host key, added in Forgejo as a read-only deploy key, so there is no
    # bootstrap secret to hand out: the same key is the host's age identity.
    repository = {
      url = lib.mkDefault "forgejo@eagle.internal:fleet/avalanche.git";
      sshKeyFile = lib.mkDefault "/etc/ssh/ssh_host_ed25519_key";
      knownHostsFile = lib.mkDefault "${pkgs.writeText "eagle-known-hosts" ''
        eagle.internal ${keys.hostKeys.eagle}
      ''}";
    };
    # Read-only status for `avalanche-agent fleet`, reachable over the tailnet only.
    statusListen = lib.mkDefault "0.0.0.0:9123";
    # Metrics for the cluster's Prometheus, which scrapes every host of the
    # inventory here (kubernetes/base/infra/observability/fleet-scrape.yaml,
    # generated): from the home LAN and k3s's pod network, and the tailnet.
    metricsListen = lib.mkDefault "0.0.0.0:9464";
    # Only commits signed by an operator are deployed; hosts in builder mode
    # take releases signed by the release builder (lib/signers.nix).
    verify.allowedSignersFile = "${pkgs.writeText "allowed-signers" (import ../lib/signers.nix)}";
    # This host's rollout wave, from the inventory and lib/rollout.nix
    # (docs/rollouts.md); off until every host reports to the forge.
    rollout = lib.mkIf rollout.enable {
      wave = waves.waves.${host.name};
      inherit (waves) waves soak budgets;
      group = waves.groups.${host.name};
      lease = {
        inherit (waves.lease) anchor ttl;
      };
    };
    # This host's wave's reboot window (lib/rollout.nix windows): over a
    # role's default window (mkDefault), under a host's own setting.
    deploy.reboot.window = lib.mkIf (waves.windows ? ${host.name}) (lib.mkOverride 900 waves.windows.${host.name});
  };

  nix = {
    settings = {
      experimental-features = [
        "nix-command"
        "flakes"
      ];
      trusted-users = [ "@wheel" ];
      # The fleet cache on possum (lib/fleet-cache.nix) first, then the official one.
      substituters = [ fleetCache.url ];
      trusted-public-keys = [ keys.binaryCache ];
      auto-optimise-store = true;
    };
    gc = {
      automatic = true;
      dates = "weekly";
      options = "--delete-older-than 14d";
    };
  };

  networking.domain = "internal";
  time.timeZone = lib.mkDefault "Europe/Paris";
  i18n.defaultLocale = "en_US.UTF-8";

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };

  services.tailscale.enable = true;
  networking.firewall.interfaces.tailscale0.allowedTCPPorts = [
    9123
    9464
  ];
  # Ports open to the home LAN (10.0.0.0/24, see
  # nixos/hosts/mysecrets/internal.zone) and to k3s's pod network (10.42.0.0/16),
  # never to a WAN interface: the agent's metrics (9464) everywhere and, on k3s
  # nodes, what the cluster runs on the host network: node-exporter (9100,
  # scraped by Prometheus) and Home Assistant (8123, proxied by Traefik on the
  # servers). A pod reaches its own node from its pod address (cni0); a pod on
  # another node arrives masqueraded to that node's LAN address (flannel).
  # One extraCommands for the fleet (a NixOS `lines` option; the evaluation
  # test's stub keeps one definition).
  networking.firewall.extraCommands = lib.concatMapStrings (port: ''
    iptables -A nixos-fw -p tcp --dport ${toString port} -s 10.0.0.0/24 -j nixos-fw-accept
    iptables -A nixos-fw -p tcp --dport ${toString port} -s 10.42.0.0/16 -j nixos-fw-accept
  '') ([ 9464 ] ++ lib.optionals k3sNode [ 8123 9100 ]);

  users.users.root.openssh.authorizedKeys.keys = keys.admins;
  users.users.admin = {
    isNormalUser = true;
    extraGroups = [
      "wheel"
      "avalanche"
    ];
    openssh.authorizedKeys.keys = keys.admins;
  };
  security.sudo.wheelNeedsPassword = false;

  environment.systemPackages = with pkgs; [
    git
    htop
    jq
    vim
  ];

  # Where the inventory says this host belongs, for humans on the console.
  users.motd = "${host.name}: ${host.hardware}, roles: ${lib.concatStringsSep ", " host.roles}\n";
}
