# render, builder mode: option values (defaults filled in) -> the builder-mode
# keys of the agent's JSON config (agent/internal/config/builder.go). Pure,
# merged into render.nix's result.
o:
let
  inherit (import ./lib.nix) orEmpty;
in
{
  deploy = {
    inherit (o.deploy) source builderTimeout builderFallback;
    cache = {
      url = orEmpty o.deploy.cache.url;
      publicKeys = o.deploy.cache.publicKeys;
    };
  };
  verify = {
    inherit (o.verify) builderPrincipal;
    builderSignersFile = orEmpty o.verify.builderSignersFile;
  };
  builder = {
    inherit (o.builder) enable parallelism hostTimeout;
    cacheURL = orEmpty o.builder.cacheURL;
    cacheCredentialsFile = orEmpty o.builder.cacheCredentialsFile;
    s3Helper = orEmpty o.builder.s3Helper;
    signingKeyFile = orEmpty o.builder.signingKeyFile;
    releaseKeyFile = orEmpty o.builder.releaseKeyFile;
  };
}
