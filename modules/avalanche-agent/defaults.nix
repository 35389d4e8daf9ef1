# Defaults of the typed services.avalanche-agent options, as plain data.
#
# Pure (no nixpkgs): options.nix uses these as option defaults and render.nix
# fills them in for callers (tests) that pass only part of an option set, so the
# defaults live in exactly one place on the Nix side. They mirror the agent's own
# defaults in agent/internal/config; the contract test in modules_test.go feeds
# the rendered result to `avalanche-agent check-config`.
{
  hostname = null; # the module sets networking.hostName
  flakeOutput = null; # null: the hostname
  repository = {
    url = null;
    branch = "main";
    testingBranch = null; # null: "testing/<hostname>"
    tokenFile = null;
    sshKeyFile = null;
    knownHostsFile = null;
    fetchTimeout = "2m";
    allowInsecureHTTP = false;
    maxObjectSize = 16777216; # 16 MiB
    maxFetchSize = 1073741824; # 1 GiB
    maxFetchObjects = 1000000;
  };
  pollInterval = "60s";
  group = "avalanche";
  operatorGroup = "wheel";
  deploy = {
    action = "switch";
    evalTimeout = "30m";
    buildTimeout = "4h";
    confirmTimeout = "120s";
    switchTimeout = "30m";
    repairDrift = true;
    healthChecks = [ ]; # the agent itself holds units that failed after the switch against it
    keepGCRoots = 3;
    postDeployHook = null;
    reboot = {
      enable = false;
      window = "02:00-05:00";
    };
    drain = {
      enable = false;
      helper = null; # null: the package's avalanche-drain
      kubeconfig = "/etc/rancher/k3s/k3s.yaml";
      node = null; # null: the hostname (k3s's node name)
      timeout = "15m";
    };
  };
  verify = {
    allowedSignersFile = null;
    gpgKeyFiles = [ ];
  };
  decryption = {
    dir = "/run/secrets";
    ageKeyFiles = [ ];
    sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
    keepGenerations = 5;
    helper = null; # null: avalanche-decrypt next to the agent binary
    allowSwappable = false;
  };
  exitNode = {
    enable = false;
    authKeyFile = null;
    apiKeyFile = null;
    tailnet = "-";
    socket = "/var/run/tailscale/tailscaled.sock";
  };
  homeIP = {
    enable = false;
    firewall = "avalanche-exit-node";
    tokenFile = null;
    wanInterface = null;
    interval = "5m";
  };
  report.forge = {
    url = null; # null: no commit statuses
    tokenFile = null;
    repository = null; # null: owner/name from repository.url
  };
  rollout = {
    wave = 0; # 0: a canary, never held
    waves = { }; # host -> wave; empty: no gate
    soak = "15m";
    group = null; # null: no disruption budget
    budgets = { }; # group -> hosts at once
    lease = {
      anchor = null;
      ttl = "15m";
    };
  };
  metricsListen = null;
  statusListen = null;
  logLevel = "info";
  settings = { };
}
