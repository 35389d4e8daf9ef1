# Options of builder mode (docs/builder.md): a host takes its system from the
# builder's signed release instead of evaluating, and the builder role that
# publishes releases. Declarations only; nixos/ decides who uses them.
{ lib, ... }:
let
  inherit (lib) mkOption mkEnableOption types;
  d = import ./builder-defaults.nix;
  duration = types.strMatching "([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+";
  secretPath = types.nullOr (types.strMatching "/.*");
  opt =
    type: default: description:
    mkOption { inherit type default description; };
in
{
  options.services.avalanche-agent = {
    deploy = {
      source = opt (types.enum [ "local" "builder" ]) d.deploy.source ''
        Where the system comes from: `local` evaluates and builds it here;
        `builder` substitutes the store path the builder's signed release
        names for the verified commit, from deploy.cache, and never evaluates.
      '';
      builderTimeout = opt duration d.deploy.builderTimeout "How long a host in builder mode waits for the release of a new commit.";
      builderFallback = opt (types.enum [ "evaluate" "wait" ]) d.deploy.builderFallback ''
        What happens after builderTimeout without a release: evaluate
        locally, or keep waiting (status says so).
      '';
      cache = {
        url = opt (types.nullOr types.str) d.deploy.cache.url ''
          The fleet binary cache (a Nix store URL: https://, http://,
          s3://…?endpoint=…, ssh-ng://, file:///…); required in builder mode.
        '';
        publicKeys = opt (types.listOf types.str) d.deploy.cache.publicKeys ''
          The only keys (name:base64) whose narinfo signatures are trusted
          when substituting in builder mode.
        '';
      };
    };

    verify = {
      builderPrincipal = opt types.str d.verify.builderPrincipal ''
        Principal the builder's key is listed under in the allowed signers
        file, as `<principal> namespaces="avalanche-release" <key>`.
      '';
      builderSignersFile = opt secretPath d.verify.builderSignersFile ''
        allowed_signers for release signatures; null means
        verify.allowedSignersFile.
      '';
    };

    builder = {
      enable = mkEnableOption ''
        the builder role: evaluate and build every host per main commit,
        push the closures to builder.cacheURL and publish signed releases on
        the avalanche/releases branch (the repository credentials need push access)
      '';
      cacheURL = opt (types.nullOr types.str) d.builder.cacheURL "Nix store URL the closures are copied to.";
      cacheCredentialsFile = opt secretPath d.builder.cacheCredentialsFile ''
        The S3 keys of an s3:// builder.cacheURL, in the AWS
        shared-credentials format (an agent-managed secret's path).
      '';
      s3Helper = opt (types.nullOr types.str) d.builder.s3Helper ''
        Path of avalanche-s3, the S3 client the builder runs for an s3://
        builder.cacheURL. Null means the one next to the agent.
      '';
      signingKeyFile = opt secretPath d.builder.signingKeyFile "The binary cache's secret key (nix-store --generate-binary-cache-key).";
      releaseKeyFile = opt secretPath d.builder.releaseKeyFile "SSH private key that signs releases.";
      parallelism = opt types.ints.positive d.builder.parallelism "Hosts evaluated and built at once (an evaluation takes 1-2 GB).";
      hostTimeout = opt duration d.builder.hostTimeout "Bound on one host's evaluation, build and copy.";
    };
  };
}
