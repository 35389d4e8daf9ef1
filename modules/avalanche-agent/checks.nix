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

  # Secrets files that are not there. A fresh clone has none (nobody's real
  # secrets can be committed for them), and without this check evaluation
  # stops at "getting status of …: No such file or directory" when the
  # manifest copies the file into the store.
  secrets = options.secrets or { };
  missing = builtins.filter (
    n:
    builtins.isPath secrets.${n}.sopsFile && !builtins.pathExists secrets.${n}.sopsFile
  ) (builtins.attrNames secrets);
  byFile = builtins.foldl' (
    acc: n:
    let
      f = toString secrets.${n}.sopsFile;
    in
    acc // { ${f} = (acc.${f} or [ ]) ++ [ n ]; }
  ) { } missing;
  keyOf = n: if (secrets.${n}.key or null) != null then secrets.${n}.key else n;
  host = if o.hostname == null then "HOST" else o.hostname;
  # secrets/nixos/<host>/secrets.yaml rather than its /nix/store/…-source copy.
  inRepo =
    file:
    let
      m = builtins.match ".*/(secrets/.*)" file;
    in
    if m == null then file else builtins.head m;
  missingFile = file: {
    assertion = false;
    message = ''
      ${prefix}.secrets: ${inRepo file} does not exist (looked for ${file}).
      Secrets that read it: ${concat (map (n: "${n} (key ${keyOf n})") byFile.${file})}.
      Create the host's secrets file with `just add-host ${host} …`
      (avalanche-agent add-host ${host} --system … --hardware … --roles … --ssh-host-key FILE),
      then add those keys with `sops ${inRepo file}` and commit it: a flake sees only files git tracks.
      docs/migration/README.md lists the keys every host needs.'';
  };
  concat = builtins.concatStringsSep ", ";
in
map missingFile (builtins.attrNames byFile)
++ [
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
  {
    # avalanche-drain is not in the agent's package: without it every drain,
    # and so every switch that restarts k3s, would fail.
    assertion = !o.deploy.drain.enable || set o.deploy.drain.helper;
    message = "${prefix}.deploy.drain.enable needs ${prefix}.deploy.drain.package (the flake's module sets it) or ${prefix}.deploy.drain.helper.";
  }
]
