# Defaults of the builder-mode options (builder.nix), as plain data merged
# into defaults.nix's by render.nix. They mirror agent/internal/config/builder.go.
{
  deploy = {
    source = "local";
    builderTimeout = "30m";
    builderFallback = "evaluate";
    cache = {
      url = null;
      publicKeys = [ ];
    };
  };
  verify = {
    builderPrincipal = "builder";
    builderSignersFile = null; # null: verify.allowedSignersFile
  };
  builder = {
    enable = false;
    cacheURL = null;
    cacheCredentialsFile = null;
    s3Helper = null; # null: avalanche-s3 next to the agent binary
    signingKeyFile = null;
    releaseKeyFile = null;
    parallelism = 2;
    hostTimeout = "4h";
  };
}
