# Small helpers shared by the pure renderers (render.nix, manifest.nix,
# checks.nix). Builtins only, so `nix-instantiate --eval` can test them
# without nixpkgs.
rec {
  # deepMerge a b: b wins; attribute sets are merged recursively, lists and
  # scalars are replaced (the same rule as lib.recursiveUpdate).
  deepMerge =
    a: b:
    a
    // builtins.mapAttrs (
      name: value:
      if builtins.isAttrs value && builtins.isAttrs (a.${name} or null) then
        deepMerge a.${name} value
      else
        value
    ) b;

  # orEmpty: the agent's config spells "not set" as "" for optional paths.
  orEmpty = value: if value == null then "" else toString value;

  # isSSHURL: ssh://host/path or scp-like [user@]host:path, classified the
  # way the agent does (config.RemoteKind): not a URL with another scheme,
  # not a local path.
  isSSHURL =
    url:
    url != null
    && (
      builtins.match "ssh://.*" url != null
      || builtins.match "([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:[^/].*" url != null
      || builtins.match "[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.*" url != null
    );

  # isHTTPURL: http:// or https://.
  isHTTPURL = url: url != null && builtins.match "https?://.*" url != null;
}
