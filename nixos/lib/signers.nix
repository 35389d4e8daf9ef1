# The allowed_signers file every host verifies with (global.nix), as text.
# Operators sign commits (namespace git). The release builder's SSH host key
# signs releases (namespace avalanche-release, principal builder, which is
# verify.builderPrincipal): a key listed for one namespace cannot sign for
# the other, so the builder cannot sign a deployable commit.
let
  keys = import ./keys.nix;
in
builtins.concatStringsSep "" (map (k: "admin@avalanche namespaces=\"git\" ${k}\n") keys.admins)
+ "builder namespaces=\"avalanche-release\" ${keys.hostKeys.${keys.releaseBuilder}}\n"
