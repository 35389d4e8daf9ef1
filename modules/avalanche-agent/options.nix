# Options of services.avalanche-agent. Declarations only: nothing here turns
# anything on (modules declare, nixos decides). Defaults come from
# defaults.nix, which render.nix shares.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkEnableOption types;
  d = import ./defaults.nix;
  json = pkgs.formats.json { };

  # A Go time.ParseDuration string: "90s", "1h30m", "500ms".
  duration = types.strMatching "([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+";

  # Paths to secret files are strings on purpose: a `types.path` literal would
  # be copied into the world-readable Nix store.
  secretPath = types.nullOr (types.strMatching "/.*");

  opt =
    type: default: description:
    mkOption { inherit type default description; };

  secretModule =
    { name, ... }:
    {
      options = {
        sopsFile = mkOption {
          type = types.path;
          example = lib.literalExpression "../../secrets/nixos/eagle/forgejo.yaml";
          description = ''
            The SOPS-encrypted file (a path literal). It is copied into the
            Nix store encrypted, so the system closure changes whenever the
            secret does.
          '';
        };
        key = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = ''
            Key inside the document, `/`-separated for nested YAML/JSON
            (`db/password`). Null means the attribute name; for
            `format = "binary"` the whole file is used.
          '';
        };
        format = opt (types.enum [ "yaml" "json" "dotenv" "ini" "binary" ]) "yaml" "SOPS format of sopsFile.";
        owner = opt types.str "root" "User owning the decrypted file.";
        group = opt types.str "root" "Group owning the decrypted file.";
        mode = opt (types.strMatching "0?[0-7]{3}") "0400" "Octal file mode of the decrypted file.";
        restartUnits = opt (types.listOf types.str) [ ] "Units restarted when this secret changes. Services named here (and in reloadUnits) also start after avalanche-agent, which installs the secrets at boot before it reports ready.";
        reloadUnits = opt (types.listOf types.str) [ ] "Units reloaded when this secret changes.";
        path = mkOption {
          type = types.str;
          readOnly = true;
          default = "${config.services.avalanche-agent.decryption.dir}/${name}";
          defaultText = lib.literalExpression ''"''${config.services.avalanche-agent.decryption.dir}/<name>"'';
          description = "Where services read the decrypted secret (a symlink swapped atomically).";
        };
      };
    };
in
{
  options.services.avalanche-agent = {
    enable = mkEnableOption "avalanche-agent, which pulls the fleet repository and switches this host to it";

    package = mkOption {
      type = types.package;
      description = "The avalanche-agent package (provides avalanche-agent, avalanche-decrypt, avalanche-cloud and avalanche-s3).";
    };

    hostname = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "Host name the agent reports and uses for its testing branch.";
    };

    flakeOutput = opt (types.nullOr types.str) d.flakeOutput ''
      nixosConfigurations.<output> to deploy. Null means the hostname.
    '';

    repository = {
      url = mkOption {
        type = types.str;
        example = "https://eagle.internal/fleet/avalanche.git";
        description = "The fleet repository: https://, ssh://, scp-like user@host:path, or a local path.";
      };
      branch = opt types.str d.repository.branch "Branch deployed with deploy.action.";
      testingBranch = opt (types.nullOr types.str) d.repository.testingBranch ''
        Branch deployed with `test` (not made the boot default). Null means
        `testing/<hostname>`.
      '';
      tokenFile = opt secretPath d.repository.tokenFile "File with an HTTPS access token (https URLs only).";
      sshKeyFile = opt secretPath d.repository.sshKeyFile "SSH deploy key (SSH URLs only).";
      knownHostsFile = opt secretPath d.repository.knownHostsFile "known_hosts for the git server (required with SSH URLs).";
      fetchTimeout = opt duration d.repository.fetchTimeout "Timeout of one fetch.";
      maxObjectSize = opt types.ints.positive d.repository.maxObjectSize ''
        Largest object (bytes, inflated; a delta's result too) a fetch accepts.
        A push over it is refused before anything is inflated, as a fault of
        the pushed commit.
      '';
      maxFetchSize = opt types.ints.positive d.repository.maxFetchSize "Most pack bytes one fetch of a branch receives.";
      maxFetchObjects = opt types.ints.positive d.repository.maxFetchObjects "Most objects in one fetch of a branch.";
      allowInsecureHTTP = opt types.bool d.repository.allowInsecureHTTP ''
        Let tokenFile go with a plain http:// URL, for a forge on this very
        machine only: the agent still refuses any host but loopback.
      '';
    };

    pollInterval = opt duration d.pollInterval "How often the agent asks the remote for new commits.";

    # The agent's cgroup bounds: a push that makes the agent (or the nix
    # evaluation it runs) take too much memory hits the agent's unit only,
    # never k3s or the host. Switches run in their own transient units.
    memory =
      let
        size = types.nullOr (types.strMatching "[0-9]+[KMGT]?|[0-9]+%|infinity");
        inherit (config.services.avalanche-agent) deploy builder;
        evaluates = !(deploy.source == "builder" && deploy.builderFallback == "wait");
        # An evaluation takes 1-2 GB; the builder runs `parallelism` at once.
        gb = n: "${toString n}G";
        defaults =
          if builder.enable then
            {
              high = gb (2 * builder.parallelism);
              max = gb (2 * builder.parallelism + 1);
            }
          else if evaluates then
            {
              high = "2560M";
              max = "3G";
            }
          else
            {
              high = "384M";
              max = "512M";
            };
        sizeOpt =
          default: description:
          mkOption {
            type = size;
            inherit default description;
            defaultText = lib.literalMD ''
              by mode: 384M (high) and 512M (max) on a host that never evaluates
              (deploy.source = "builder", deploy.builderFallback = "wait"); 2560M
              and 3G on one that evaluates; for the builder role 2 GB per
              builder.parallelism, plus 1 GB for max
            '';
          };
      in
      {
        high = sizeOpt defaults.high "MemoryHigh= of the agent's unit (throttled above it); null: none.";
        max = sizeOpt defaults.max "MemoryMax= of the agent's unit (out-of-memory-killed above it, then restarted); null: none.";
      };

    group = opt types.str d.group "Group whose members may read the agent's status (`avalanche-agent status`).";
    operatorGroup = opt types.str d.operatorGroup "Group whose members may act (`avalanche-agent sync`).";

    deploy = {
      action = opt (types.enum [ "switch" "boot" "test" ]) d.deploy.action "How a new main commit is activated.";
      evalTimeout = opt duration d.deploy.evalTimeout "Timeout of evaluating the system.";
      buildTimeout = opt duration d.deploy.buildTimeout "Timeout of building the system.";
      confirmTimeout = opt duration d.deploy.confirmTimeout "Deadline for the health confirmation after a switch; then it rolls back.";
      switchTimeout = opt duration d.deploy.switchTimeout "Time limit of one switch-to-configuration (RuntimeMaxSec= of its unit); past it the activation counts as failed and rolls back.";
      repairDrift = opt types.bool d.deploy.repairDrift "Re-activate the deployed system when something else (a hand-run rebuild, a manual rollback) replaced it; false only reports the drift.";
      healthChecks = opt (types.listOf types.str) d.deploy.healthChecks "Commands (run with /bin/sh -c) that must succeed after a switch.";
      keepGCRoots = opt types.ints.positive d.deploy.keepGCRoots "Number of built systems kept as GC roots.";
      postDeployHook = opt (types.nullOr types.str) d.deploy.postDeployHook "Command run after a confirmed deploy.";
      reboot = {
        enable = opt types.bool d.deploy.reboot.enable "Reboot in the window when the kernel or initrd changed.";
        window = opt (types.strMatching "[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]") d.deploy.reboot.window "Local time window for reboots.";
      };
      drain = {
        enable = opt types.bool d.deploy.drain.enable ''
          Cordon and drain this host's k3s node (eviction API, PodDisruptionBudgets
          respected) before a switch that restarts k3s.service and before a reboot;
          uncordon it once it is Ready again. Set by the k3s role profiles.
        '';
        package = opt (types.nullOr types.package) null "The package holding bin/avalanche-drain (the flake's module sets it).";
        helper = opt (types.nullOr types.str) d.deploy.drain.helper "Path of avalanche-drain. Null: the one in deploy.drain.package.";
        kubeconfig = opt types.str d.deploy.drain.kubeconfig "Kubeconfig allowed to cordon the node and evict pods (k3s servers write /etc/rancher/k3s/k3s.yaml; k3s agents have none).";
        node = opt (types.nullOr types.str) d.deploy.drain.node "The k3s node name. Null: the host name.";
        timeout = opt duration d.deploy.drain.timeout "How long a drain (and the wait for Ready) may take; past it the node is uncordoned and the switch waits for a later pass.";
      };
    };

    verify = {
      allowedSignersFile = opt secretPath d.verify.allowedSignersFile "ssh allowed_signers file; when set, deployed commits must be signed by one of them.";
      gpgKeyFiles = opt (types.listOf types.str) d.verify.gpgKeyFiles "Armored GPG public keys allowed to sign deployed commits.";
    };

    secrets = mkOption {
      type = types.attrsOf (types.submodule secretModule);
      default = { };
      example = lib.literalExpression ''
        {
          vaultwarden-env = {
            sopsFile = ../../secrets/nixos/mysecrets/vaultwarden.env;
            format = "dotenv";
            key = "";
            owner = "vaultwarden";
            restartUnits = [ "vaultwarden.service" ];
          };
        }
      '';
      description = ''
        Secrets the agent decrypts into decryption.dir before switching. They
        are rendered into /etc/avalanche-agent/secrets.json in the system closure.
      '';
    };

    decryption = {
      dir = opt types.str d.decryption.dir "RAM-backed directory the secrets are decrypted into.";
      ageKeyFiles = opt (types.listOf types.str) d.decryption.ageKeyFiles "age identity files (AGE-SECRET-KEY-...).";
      sshKeyPaths = opt (types.listOf types.str) d.decryption.sshKeyPaths "SSH ed25519 private keys used as age identities.";
      keepGenerations = opt types.ints.positive d.decryption.keepGenerations "Secret generations kept for rollback.";
      helper = opt (types.nullOr types.str) d.decryption.helper "Path of avalanche-decrypt. Null means the one next to the agent.";
      allowSwappable = opt types.bool d.decryption.allowSwappable ''
        Accept secrets generations on a tmpfs whose pages may be swapped out
        when the agent finds no ramfs or noswap tmpfs under
        /run/avalanche-agent/secrets.d (the module mounts a ramfs there).
      '';
    };

    exitNode = {
      enable = mkEnableOption "keeping this host registered as the fleet's Tailscale exit node (the agent is the only owner of --advertise-exit-node)";
      authKeyFile = opt secretPath d.exitNode.authKeyFile "Tailscale auth key file.";
      apiKeyFile = opt secretPath d.exitNode.apiKeyFile "Tailscale API key file (approves the exit-node route).";
      tailnet = opt types.str d.exitNode.tailnet "Tailnet name; \"-\" is the key's default tailnet.";
      socket = opt types.str d.exitNode.socket "tailscaled's local API socket.";
    };

    homeIP = {
      enable = mkEnableOption "watching the home public IP and writing it into the exit node's Hetzner firewall";
      firewall = opt types.str d.homeIP.firewall "Name of the Hetzner Cloud firewall to update.";
      tokenFile = opt secretPath d.homeIP.tokenFile "Hetzner Cloud API token file.";
      wanInterface = opt (types.nullOr types.str) d.homeIP.wanInterface "Interface holding the public address; null asks an external echo service.";
      interval = opt duration d.homeIP.interval "How often the public IP is checked.";
    };

    report.forge = {
      url = opt (types.nullOr types.str) d.report.forge.url ''
        Base URL of the forge that shows each deployment as the commit status
        avalanche/<hostname> (Forgejo or Gitea, e.g. "https://git.internal";
        "https://github.com" for GitHub). Null disables forge reporting.
      '';
      tokenFile = opt secretPath d.report.forge.tokenFile "File with a forge token allowed to write commit statuses (Forgejo: scope write:repository).";
      repository = opt (types.nullOr (types.strMatching "[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")) d.report.forge.repository ''
        owner/name of the fleet repository on the forge. Null means the
        owner/name that repository.url ends in.
      '';
    };

    rollout = {
      wave = opt types.ints.unsigned d.rollout.wave ''
        This host's rollout wave (docs/rollouts.md). A host of wave N deploys a
        main commit only once every host of the waves before N shows it
        deployed and healthy for rollout.soak, in the forge commit statuses
        (report.forge, which a wave above 0 needs). Wave 0 is never held.
        The fleet sets it from nixos/lib/rollout.nix.
      '';
      waves = opt (types.attrsOf types.ints.unsigned) d.rollout.waves ''
        The whole wave table, host name -> wave, from the same inventory on
        every host; it must name this host with rollout.wave. Empty: no gate.
      '';
      soak = opt duration d.rollout.soak "How long the earlier waves must have run a commit successfully before this host deploys it.";
      group = opt (types.nullOr (types.strMatching "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?")) d.rollout.group ''
        This host's disruption group (docs/rollouts.md): at most
        rollout.budgets.<group> hosts of it activate or reboot at once,
        under a lease kept in the forge's commit statuses (report.forge).
        Null: no disruption budget. The fleet sets it from
        nixos/lib/rollout.nix (a host's first role).
      '';
      budgets = opt (types.attrsOf types.ints.positive) d.rollout.budgets ''
        Every group's budget, group -> hosts at once (at least 1); it must
        name rollout.group.
      '';
      lease = {
        anchor = opt (types.nullOr (types.strMatching "[0-9a-f]{40}|[0-9a-f]{64}")) d.rollout.lease.anchor ''
          Full id of a commit of the repository that the lease's claims are
          set on; the same on every host. Needed with rollout.group.
        '';
        ttl = opt duration d.rollout.lease.ttl ''
          How long a claim lives without a renewal (a holder renews every
          ttl/3): a holder that dies or is unplugged frees the lease this long
          after its last renewal, and a reboot is covered for this long.
        '';
      };
    };

    metricsListen = opt (types.nullOr types.str) d.metricsListen "Prometheus listen address (e.g. \"127.0.0.1:9464\"); null disables metrics.";

    statusListen = opt (types.nullOr types.str) d.statusListen ''
      Address of the read-only HTTP status endpoint that `avalanche-agent fleet`
      queries (e.g. "0.0.0.0:9123"); null disables it. Open the port on the
      tailnet interface only.
    '';

    logLevel = opt (types.enum [ "debug" "info" "warn" "error" ]) d.logLevel "Log level.";

    settings = mkOption {
      type = json.type;
      default = { };
      example = {
        webhook.listen = "127.0.0.1:9465";
        deploy.keepGCRoots = 5;
      };
      description = ''
        Free-form agent configuration (RFC 42), merged over what the typed
        options render; it wins on conflicts. Keys must exist in the agent's
        config format (the agent's decoder rejects unknown keys; the build runs
        `avalanche-agent check-config` on the result).
      '';
    };
  };
}
