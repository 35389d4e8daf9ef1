# checks: option values -> NixOS assertions ({ assertion; message; } list)
# for combinations the agent cannot run with.
#
# Pure (builtins only) so modules_test.go can show each message without a
# NixOS evaluation; default.nix passes the list to `assertions` unchanged.
options:
let
  inherit (import ./lib.nix) deepMerge isSSHURL isHTTPURL;
  o = deepMerge (import ./defaults.nix) options;
  repo = o.repository;
  prefix = "services.avalanche-agent";
  set = value: value != null && value != "";
in
[
  {
    assertion = !(isSSHURL repo.url) || set repo.knownHostsFile;
    message = "${prefix}.repository.url is an SSH URL (${toString repo.url}): set ${prefix}.repository.knownHostsFile so the host key is checked.";
  }
  {
    assertion = !(isSSHURL repo.url) || set repo.sshKeyFile;
    message = "${prefix}.repository.url is an SSH URL (${toString repo.url}): set ${prefix}.repository.sshKeyFile (a deploy key).";
  }
  {
    assertion = !(set repo.tokenFile) || isHTTPURL repo.url;
    message = "${prefix}.repository.tokenFile only works with an http(s) URL, not ${toString repo.url}.";
  }
  {
    assertion = !(set repo.sshKeyFile || set repo.knownHostsFile) || isSSHURL repo.url;
    message = "${prefix}.repository.sshKeyFile and knownHostsFile only work with an SSH URL, not ${toString repo.url}.";
  }
  {
    assertion = !o.exitNode.enable || set o.exitNode.authKeyFile;
    message = "${prefix}.exitNode.enable needs ${prefix}.exitNode.authKeyFile (a Tailscale auth key).";
  }
  {
    assertion = !o.homeIP.enable || set o.homeIP.tokenFile;
    message = "${prefix}.homeIP.enable needs ${prefix}.homeIP.tokenFile (a Hetzner Cloud API token).";
  }
  {
    # The watcher reports the address it sees as "home"; on the VPS that is
    # the VPS itself, and the firewall would let the wrong network in.
    assertion = !(o.exitNode.enable && o.homeIP.enable);
    message = "${prefix}.exitNode and ${prefix}.homeIP cannot both be enabled: the home-IP watcher must run at home, the exit node runs on the VPS.";
  }
  {
    assertion = !o.deploy.reboot.enable || o.deploy.action != "test";
    message = "${prefix}.deploy.reboot.enable makes no sense with deploy.action = \"test\" (a reboot undoes a test activation).";
  }
]
