package secrets

// ProtocolVersion is the version of the JSON exchanged with avalanche-decrypt.
const ProtocolVersion = 1

// HelperRequest is what the daemon writes to avalanche-decrypt's standard
// input. It carries private keys: it is never written to disk or logged.
type HelperRequest struct {
	Version int `json:"version"`
	// AgeIdentities are AGE-SECRET-KEY-… strings (from key files, and the
	// X25519 keys derived from SSH ed25519 keys).
	AgeIdentities []string `json:"ageIdentities"`
	// SSHKeys are OpenSSH private keys used as native ssh-* age identities.
	SSHKeys []string       `json:"sshKeys"`
	Secrets []HelperSecret `json:"secrets"`
}

// HelperSecret is one value to decrypt.
type HelperSecret struct {
	Name     string `json:"name"`
	SopsFile string `json:"sopsFile"`
	// Key is a sops-nix style path ("db/password"); empty for the whole file.
	Key string `json:"key"`
	// Format is always set by the daemon (see Secret.EffectiveFormat).
	Format string `json:"format"`
}

// HelperResponse is what avalanche-decrypt prints on standard output: one
// result per requested secret, in request order.
type HelperResponse struct {
	Version int            `json:"version"`
	Results []HelperResult `json:"results"`
}

// HelperResult holds either a secret's value or the reason it failed.
type HelperResult struct {
	Name  string `json:"name"`
	Value []byte `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}
