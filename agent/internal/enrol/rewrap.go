package enrol

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/version"
)

// rules is one version of .sops.yaml, as sops itself reads it (from a
// file), plus its path_regex list to tell which files it covers.
type rules struct {
	path    string
	regexes []*regexp.Regexp
	stores  *config.StoresConfig
	names   map[string]string // recipient -> &anchor, for messages
}

func loadRules(path string, y *sopsYAML) (*rules, error) {
	r := &rules{path: path}
	for _, rule := range y.rules {
		re, err := regexp.Compile(rule.pathRegex)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: path_regex: %w", SopsConfigFile, rule.first, err)
		}
		r.regexes = append(r.regexes, re)
	}
	sc, err := config.LoadStoresConfig(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SopsConfigFile, err)
	}
	r.stores = sc
	return r, nil
}

// rule returns the creation rule for a file (a path relative to the
// repository), or nil when no rule covers it.
func (r *rules) rule(rel string) (*config.Config, error) {
	if !slices.ContainsFunc(r.regexes, func(re *regexp.Regexp) bool { return re.MatchString(rel) }) {
		return nil, nil
	}
	c, err := config.LoadCreationRuleForFile(r.path, rel, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: creation rule for %s: %w", SopsConfigFile, rel, err)
	}
	return c, nil
}

// secretFiles lists the files under secrets/ (relative paths), leaving out
// dotfiles such as .gitkeep.
func secretFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(filepath.Join(root, "secrets"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files, err
}

// describe names a rule's recipients by their anchors where they have one.
func (r *rules) describe(groups []sops.KeyGroup) string {
	var out []string
	for _, k := range recipients(groups) {
		if n, ok := r.names[k]; ok {
			k = n
		}
		out = append(out, k)
	}
	return strings.Join(out, ", ")
}

// recipients lists a rule's or a file's keys, one key group after another.
func recipients(groups []sops.KeyGroup) []string {
	var out []string
	for _, g := range groups {
		for _, k := range g {
			out = append(out, k.ToString())
		}
	}
	return out
}

// rewrap gives one sops file's data key to the recipients conf lists, as
// `sops updatekeys` does: the data key is decrypted with the admin's key
// (found as sops finds it) and encrypted anew for each recipient; the
// values and their ciphertexts stay as they are. It returns nil when the
// file already has those recipients.
func rewrap(root, rel string, conf *config.Config, st *config.StoresConfig, svcs []keyservice.KeyServiceClient) ([]byte, error) {
	store := common.DefaultStoreForPathOrFormat(st, rel, "")
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s is not a sops file (plain text under secrets/?): %w", rel, err)
	}
	changed := false
	for _, d := range common.DiffKeyGroups(tree.Metadata.KeyGroups, conf.KeyGroups) {
		changed = changed || len(d.Added) > 0 || len(d.Removed) > 0
	}
	threshold := min(tree.Metadata.ShamirThreshold, len(conf.KeyGroups))
	if !changed && threshold == tree.Metadata.ShamirThreshold {
		return nil, nil
	}
	key, err := tree.Metadata.GetDataKeyWithKeyServices(svcs, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: getting its data key with your admin key (as sops finds it: SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt, …): %w", rel, err)
	}
	tree.Metadata.KeyGroups = conf.KeyGroups
	tree.Metadata.ShamirThreshold = threshold
	if errs := tree.Metadata.UpdateMasterKeysWithKeyServices(key, svcs); len(errs) > 0 {
		return nil, fmt.Errorf("%s: wrapping its data key: %v", rel, errs)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return out, nil
}

// encryptNew encrypts plain for rel as `sops encrypt` would under conf.
func encryptNew(rel, plain string, conf *config.Config, st *config.StoresConfig, svcs []keyservice.KeyServiceClient) ([]byte, error) {
	store := common.DefaultStoreForPathOrFormat(st, rel, "")
	branches, err := store.LoadPlainFile([]byte(plain))
	if err != nil {
		return nil, err
	}
	m := sops.Metadata{
		KeyGroups: conf.KeyGroups, ShamirThreshold: conf.ShamirThreshold,
		UnencryptedSuffix: conf.UnencryptedSuffix, EncryptedSuffix: conf.EncryptedSuffix,
		UnencryptedRegex: conf.UnencryptedRegex, EncryptedRegex: conf.EncryptedRegex,
		UnencryptedCommentRegex: conf.UnencryptedCommentRegex, EncryptedCommentRegex: conf.EncryptedCommentRegex,
		MACOnlyEncrypted: conf.MACOnlyEncrypted, Version: version.Version,
	}
	if m.UnencryptedSuffix == "" && m.EncryptedSuffix == "" && m.UnencryptedRegex == "" && m.EncryptedRegex == "" &&
		m.UnencryptedCommentRegex == "" && m.EncryptedCommentRegex == "" {
		m.UnencryptedSuffix = sops.DefaultUnencryptedSuffix // what sops does without a setting
	}
	tree := sops.Tree{Branches: branches, Metadata: m, FilePath: rel}
	key, errs := tree.GenerateDataKeyWithKeyServices(svcs)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: generating its data key: %v", rel, errs)
	}
	if err := common.EncryptTree(common.EncryptTreeOpts{DataKey: key, Tree: &tree, Cipher: aes.NewCipher()}); err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return store.EmitEncryptedFile(tree)
}
