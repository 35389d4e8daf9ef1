package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

// decrypted is one sops file after decryption (or its failure).
type decrypted struct {
	tree  *sops.Tree
	store common.Store
	err   error
}

// fileCache decrypts each (file, format) pair once, however many secrets
// it holds.
type fileCache struct {
	ids   *identities
	files map[[2]string]*decrypted
}

func newFileCache(ids *identities) *fileCache {
	return &fileCache{ids: ids, files: make(map[[2]string]*decrypted)}
}

// secret decrypts and extracts one secret.
func (c *fileCache) secret(s secrets.HelperSecret) secrets.HelperResult {
	res := secrets.HelperResult{Name: s.Name}
	d := c.file(s.SopsFile, s.Format)
	if d.err != nil {
		res.Error = d.err.Error()
		return res
	}
	v, err := extract(d.tree, d.store, s.Key)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Value = v
	return res
}

func (c *fileCache) file(path, format string) *decrypted {
	k := [2]string{path, format}
	if d, ok := c.files[k]; ok {
		return d
	}
	d := c.decrypt(path, format)
	c.files[k] = d
	return d
}

// decrypt does what `sops decrypt` does: load the encrypted tree with the
// format's store, recover the data key, decrypt every value and verify
// the MAC (common.DecryptTree).
func (c *fileCache) decrypt(path, format string) *decrypted {
	if _, ok := map[string]bool{"yaml": true, "json": true, "dotenv": true, "ini": true, "binary": true}[format]; !ok {
		return &decrypted{err: fmt.Errorf("unknown format %q", format)}
	}
	store := common.StoreForFormat(formats.FormatFromString(format), config.NewStoresConfig())
	data, err := os.ReadFile(path)
	if err != nil {
		return &decrypted{err: err}
	}
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return &decrypted{err: fmt.Errorf("loading %s as %s: %w", path, format, err)}
	}
	tree.FilePath = path
	svcs := []keyservice.KeyServiceClient{keyservice.NewCustomLocalClient(ageKeyService{ids: c.ids.parsed})}
	if _, err := tree.Metadata.GetDataKeyWithKeyServices(svcs, nil); err != nil {
		return &decrypted{err: c.explainKeyError(&tree, err)}
	}
	_, err = common.DecryptTree(common.DecryptTreeOpts{Tree: &tree, KeyServices: svcs, Cipher: aes.NewCipher()})
	if err != nil {
		return &decrypted{err: err}
	}
	return &decrypted{tree: &tree, store: store}
}

// explainKeyError turns sops' data key error into a plain "not encrypted
// to this host" when none of the file's age recipients is ours.
func (c *fileCache) explainKeyError(tree *sops.Tree, err error) error {
	var recipients []string
	for _, group := range tree.Metadata.KeyGroups {
		for _, k := range group {
			mk, ok := k.(*sopsage.MasterKey)
			if !ok {
				recipients = append(recipients, k.TypeToIdentifier()+":"+k.ToString())
				continue
			}
			if c.ids.matches(mk.Recipient) {
				return fmt.Errorf("getting data key: %w", err)
			}
			recipients = append(recipients, mk.Recipient)
		}
	}
	return fmt.Errorf("not encrypted to this host: none of the file's recipients (%s) is an identity of this host", strings.Join(recipients, ", "))
}

// errNotFound marks a missing key path.
var errNotFound = errors.New("not found")
