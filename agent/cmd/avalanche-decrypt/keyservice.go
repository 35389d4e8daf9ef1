package main

import (
	"context"
	"errors"
	"fmt"

	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/keyservice"
)

// ageKeyService is a sops key service that decrypts data keys with the
// request's age identities only. Other key types (PGP, cloud KMS, Vault)
// fail, so sops never reaches for a keyring, a network or the environment.
type ageKeyService struct {
	ids sopsage.ParsedIdentities
}

// Encrypt is not needed to decrypt.
func (s ageKeyService) Encrypt(context.Context, *keyservice.EncryptRequest) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("encryption is not supported")
}

// Decrypt unwraps an age-encrypted data key.
func (s ageKeyService) Decrypt(_ context.Context, req *keyservice.DecryptRequest) (*keyservice.DecryptResponse, error) {
	k, ok := req.GetKey().GetKeyType().(*keyservice.Key_AgeKey)
	if !ok {
		return nil, fmt.Errorf("key type %T is not supported: only age keys", req.GetKey().GetKeyType())
	}
	if len(s.ids) == 0 {
		return nil, errors.New("no identities")
	}
	mk := &sopsage.MasterKey{Recipient: k.AgeKey.GetRecipient(), EncryptedKey: string(req.GetCiphertext())}
	s.ids.ApplyToMasterKey(mk)
	plain, err := mk.Decrypt()
	if err != nil {
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}
