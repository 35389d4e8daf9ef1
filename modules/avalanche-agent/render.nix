# render: option values of services.avalanche-agent -> the agent's JSON config.
#
# Pure: builtins only (no nixpkgs lib), so it is tested with
#   nix-instantiate --eval --strict --json -E 'import ./render.nix { ... }'
# and the output is fed to `avalanche-agent check-config` (modules_test.go).
# The module passes its whole `cfg`; tests may pass a partial set, the rest
# comes from defaults.nix. The output follows the agent's strict decoder:
# every key here must exist in agent/internal/config, durations are Go
# duration strings, and "not set" paths are "". `settings` (free-form, RFC 42)
# is merged last and wins.
options:
let
  inherit (import ./lib.nix) deepMerge orEmpty;
  o = deepMerge (deepMerge (import ./defaults.nix) (import ./builder-defaults.nix)) options;
  hostname =
    if o.hostname == null then
      throw "avalanche-agent render: hostname is required"
    else
      o.hostname;
  repo = o.repository;
  rendered = {
    version = 1;
    inherit hostname;
    flakeOutput = if o.flakeOutput == null then hostname else o.flakeOutput;
    repository = {
      url = if repo.url == null then throw "avalanche-agent render: repository.url is required" else repo.url;
      inherit (repo) branch fetchTimeout;
      testingBranch = if repo.testingBranch == null then "testing/${hostname}" else repo.testingBranch;
      tokenFile = orEmpty repo.tokenFile;
      sshKeyFile = orEmpty repo.sshKeyFile;
      knownHostsFile = orEmpty repo.knownHostsFile;
      inherit (repo) allowInsecureHTTP maxObjectSize maxFetchSize maxFetchObjects;
    };
    inherit (o) pollInterval;
    # Fixed by the unit's StateDirectory= and RuntimeDirectory=.
    stateDir = "/var/lib/avalanche-agent";
    runtimeDir = "/run/avalanche-agent";
    api = {
      inherit (o) group operatorGroup;
    };
    deploy = {
      inherit (o.deploy)
        action
        evalTimeout
        buildTimeout
        confirmTimeout
        switchTimeout
        repairDrift
        healthChecks
        keepGCRoots
        ;
      postDeployHook = orEmpty o.deploy.postDeployHook;
      reboot = {
        inherit (o.deploy.reboot) enable window;
      };
      drain = {
        inherit (o.deploy.drain) enable kubeconfig timeout;
        helper = orEmpty o.deploy.drain.helper;
        node = if o.deploy.drain.node == null then hostname else o.deploy.drain.node;
      };
    };
    verify = {
      allowedSignersFile = orEmpty o.verify.allowedSignersFile;
      gpgKeyFiles = map toString o.verify.gpgKeyFiles;
    };
    secrets = {
      inherit (o.decryption) dir keepGenerations allowSwappable;
      ageKeyFiles = map toString o.decryption.ageKeyFiles;
      sshKeyPaths = map toString o.decryption.sshKeyPaths;
      helper = orEmpty o.decryption.helper;
    };
    exitNode = {
      inherit (o.exitNode) enable tailnet socket;
      authKeyFile = orEmpty o.exitNode.authKeyFile;
      apiKeyFile = orEmpty o.exitNode.apiKeyFile;
    };
    homeIP = {
      inherit (o.homeIP) enable firewall interval;
      tokenFile = orEmpty o.homeIP.tokenFile;
      wanInterface = orEmpty o.homeIP.wanInterface;
    };
    report.forge = {
      url = orEmpty o.report.forge.url;
      tokenFile = orEmpty o.report.forge.tokenFile;
      repository = orEmpty o.report.forge.repository;
    };
    rollout = {
      inherit (o.rollout) wave waves soak budgets;
      group = orEmpty o.rollout.group;
      lease = {
        anchor = orEmpty o.rollout.lease.anchor;
        inherit (o.rollout.lease) ttl;
      };
    };
    metrics.listen = orEmpty o.metricsListen;
    statusListen = orEmpty o.statusListen;
    log.level = o.logLevel;
  };
in
deepMerge (deepMerge rendered (import ./builder-render.nix o)) o.settings
