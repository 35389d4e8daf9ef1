package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

// maxRequest bounds the request read from standard input.
const maxRequest = 16 << 20

// run reads one request, decrypts every secret and writes one response.
// Only a malformed request or unusable identities fail the whole run; a
// secret that cannot be decrypted is reported in its own result.
func run(stdin io.Reader, stdout io.Writer) error {
	scrubEnv()
	req, err := readRequest(stdin)
	if err != nil {
		return err
	}
	ids, err := parseIdentities(req)
	if err != nil {
		return err
	}
	resp := secrets.HelperResponse{Version: secrets.ProtocolVersion, Results: []secrets.HelperResult{}}
	files := newFileCache(ids)
	for _, s := range req.Secrets {
		resp.Results = append(resp.Results, files.secret(s))
	}
	return json.NewEncoder(stdout).Encode(&resp)
}

// scrubEnv removes every way sops could find key material on its own:
// SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD,
// SOPS_AGE_SSH_PRIVATE_KEY_FILE/_CMD, ~/.ssh and the user config directory.
// The agent already starts the helper with an empty environment; this also
// protects a helper started by hand.
func scrubEnv() {
	os.Clearenv()
	os.Setenv("HOME", "/nonexistent")
	os.Setenv("XDG_CONFIG_HOME", "/nonexistent")
}

func readRequest(stdin io.Reader) (*secrets.HelperRequest, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxRequest+1))
	if err != nil {
		return nil, fmt.Errorf("reading request: %w", err)
	}
	if len(data) > maxRequest {
		return nil, errors.New("reading request: larger than 16 MiB")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var req secrets.HelperRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	if req.Version != secrets.ProtocolVersion {
		return nil, fmt.Errorf("request has protocol version %d, want %d", req.Version, secrets.ProtocolVersion)
	}
	return &req, nil
}
