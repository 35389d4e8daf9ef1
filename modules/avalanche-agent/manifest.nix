# manifest: services.avalanche-agent.secrets -> the secrets manifest the agent
# reads from the built system (etc/avalanche-agent/secrets.json).
#
# Pure (builtins only), tested like render.nix. sopsFile is rendered as a store
# path: the encrypted file becomes part of the system closure, so changing a
# secret changes the toplevel and the agent redeploys. Entries are sorted by
# name (builtins.attrNames) so the file is stable.
secrets:
let
  defaults = {
    key = null; # null: the secret's name; for format "binary" the whole file ("")
    format = "yaml";
    owner = "root";
    group = "root";
    mode = "0400";
    restartUnits = [ ];
    reloadUnits = [ ];
  };
  storePath =
    name: file:
    if builtins.isPath file && !builtins.pathExists file then
      # checks.nix says the same with the command that creates the file; this
      # is for evaluations that reach the manifest without the assertions.
      throw "avalanche-agent secret ${name}: sopsFile ${toString file} does not exist (create it with `just add-host`, see docs/migration/README.md)"
    else if builtins.isPath file then
      "${file}"
    else if builtins.isString file && builtins.substring 0 11 file == "/nix/store/" then
      file
    else
      throw "avalanche-agent secret ${name}: sopsFile must be a path literal (./secrets/x.yaml) or a store path, got ${builtins.toJSON file}";
  entry =
    name:
    let
      s = defaults // secrets.${name};
    in
    {
      inherit name;
      sopsFile = storePath name s.sopsFile;
      key =
        if s.key != null then
          s.key
        else if s.format == "binary" then
          ""
        else
          name;
      inherit (s)
        format
        owner
        group
        mode
        restartUnits
        reloadUnits
        ;
    };
in
{
  version = 1;
  secrets = map entry (builtins.attrNames secrets);
}
