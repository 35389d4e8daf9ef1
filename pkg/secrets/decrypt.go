package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// HelperName is the file name of the decryption helper binary.
const HelperName = "avalanche-decrypt"

// helperEnv is the whole environment of the helper: nothing that could
// point sops at another key (SOPS_AGE_KEY*, HOME, XDG_CONFIG_HOME) survives.
var helperEnv = []string{"PATH=/nonexistent", "HOME=/nonexistent", "XDG_CONFIG_HOME=/nonexistent", "LC_ALL=C"}

// Decrypter runs the avalanche-decrypt helper.
type Decrypter struct {
	// Helper is the path of the avalanche-decrypt binary.
	Helper string
}

// DefaultHelper returns the path of avalanche-decrypt next to the running
// executable.
func DefaultHelper() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", HelperName, err)
	}
	return filepath.Join(filepath.Dir(exe), HelperName), nil
}

// SecretError is the failure of one secret.
type SecretError struct {
	Name     string
	SopsFile string
	Err      error
}

// Error implements error.
func (e *SecretError) Error() string {
	return fmt.Sprintf("secret %q (%s): %v", e.Name, e.SopsFile, e.Err)
}

// Unwrap returns the underlying reason.
func (e *SecretError) Unwrap() error { return e.Err }

// Decrypt returns every secret's value keyed by name. When any secret fails
// it returns no values and an error joining one *SecretError per failure.
func (d *Decrypter) Decrypt(ctx context.Context, ids *Identities, secrets []Secret) (map[string][]byte, error) {
	results, err := d.run(ctx, ids, secrets)
	if err != nil {
		return nil, err
	}
	values := make(map[string][]byte, len(secrets))
	var errs []error
	for i, r := range results {
		if r.Error != "" {
			errs = append(errs, &SecretError{Name: r.Name, SopsFile: secrets[i].SopsFile, Err: errors.New(r.Error)})
			continue
		}
		values[r.Name] = r.Value
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return values, nil
}

// run sends one request to the helper and checks the response matches it.
func (d *Decrypter) run(ctx context.Context, ids *Identities, secrets []Secret) ([]HelperResult, error) {
	if ids.Empty() {
		return nil, errors.New("decrypting secrets: no identities")
	}
	if len(secrets) == 0 {
		return nil, nil
	}
	req := newRequest(ids, secrets)
	in, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding helper request: %w", err)
	}
	out, err := d.exec(ctx, in)
	if err != nil {
		return nil, err
	}
	return parseResponse(out, req)
}

func newRequest(ids *Identities, secrets []Secret) *HelperRequest {
	req := &HelperRequest{Version: ProtocolVersion, AgeIdentities: ids.age}
	for _, k := range ids.ssh {
		req.SSHKeys = append(req.SSHKeys, string(k))
	}
	for _, s := range secrets {
		req.Secrets = append(req.Secrets, HelperSecret{
			Name: s.Name, SopsFile: s.SopsFile, Key: s.Key, Format: s.EffectiveFormat(),
		})
	}
	return req
}

// exec runs the helper with a scrubbed environment.
func (d *Decrypter) exec(ctx context.Context, stdin []byte) ([]byte, error) {
	if d.Helper == "" {
		return nil, fmt.Errorf("decrypting secrets: no path to %s configured", HelperName)
	}
	cmd := exec.CommandContext(ctx, d.Helper)
	cmd.Env = helperEnv
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("running %s: %w: %s", d.Helper, err, tail(stderr.Bytes(), 2048))
	}
	return stdout.Bytes(), nil
}

func parseResponse(out []byte, req *HelperRequest) ([]HelperResult, error) {
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	var resp HelperResponse
	if err := dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("decoding helper response: %w", err)
	}
	if resp.Version != ProtocolVersion {
		return nil, fmt.Errorf("helper speaks protocol version %d, want %d", resp.Version, ProtocolVersion)
	}
	if len(resp.Results) != len(req.Secrets) {
		return nil, fmt.Errorf("helper returned %d results for %d secrets", len(resp.Results), len(req.Secrets))
	}
	for i, r := range resp.Results {
		if r.Name != req.Secrets[i].Name {
			return nil, fmt.Errorf("helper result %d is for %q, want %q", i, r.Name, req.Secrets[i].Name)
		}
	}
	return resp.Results, nil
}

// tail returns at most the last n bytes of b, trimmed.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Result is the outcome of checking one secret.
type Result struct {
	Name     string
	SopsFile string
	// Size is the decrypted length in bytes; the value itself is dropped.
	Size int
	// Err is nil when the secret decrypts.
	Err error
}

// Check decrypts every secret of m in memory and reports each one; it
// writes nothing. A failure of the helper itself is reported on every secret.
func Check(ctx context.Context, d *Decrypter, ids *Identities, m *Manifest) []Result {
	results := make([]Result, len(m.Secrets))
	hr, err := d.run(ctx, ids, m.Secrets)
	for i, s := range m.Secrets {
		results[i] = Result{Name: s.Name, SopsFile: s.SopsFile, Err: err}
		if err != nil {
			continue
		}
		if hr[i].Error != "" {
			results[i].Err = errors.New(hr[i].Error)
		}
		results[i].Size = len(hr[i].Value)
	}
	return results
}
