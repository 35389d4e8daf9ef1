package secrets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// dirMode lets services traverse the secrets directories but not list them.
const dirMode = 0o751

// tmpPrefix marks a generation still being written.
const tmpPrefix = ".tmp-"

// Store keeps generations of installed secrets under Root and points Link
// at the current one. Root should be on a RAM-backed filesystem (see
// EnsureRAMFS). A Store assumes it is the only writer of Root and Link.
type Store struct {
	// Link is the path services read, e.g. /run/secrets: a symlink to the
	// current generation.
	Link string
	// Root holds one directory per generation, named by a decimal ID,
	// e.g. /run/avalanche-agent/secrets.d.
	Root string
	// Keep is how many generations Prune keeps besides the current one.
	Keep int
	// Boot identifies the current boot; default the kernel's boot_id.
	// Generation IDs carry it, so a generation recorded before a reboot is
	// never mistaken for one of the same number installed after it.
	Boot string
}

// Generation is one directory of installed secrets.
type Generation struct {
	ID   string
	Path string
}

// ErrManifest marks an install refused for what the manifest asks (a
// missing value, an owner that does not exist), before anything is
// written: a property of the system being installed, not of the host.
var ErrManifest = errors.New("secrets manifest cannot be installed")

// Install writes values into a new generation with each secret's owner and
// mode, syncs it, then atomically points Link at it. It returns the names
// whose content, owner or mode differ from the previous generation. On any
// error the new generation is removed and Link is left as it was.
func (s *Store) Install(ctx context.Context, m *Manifest, values map[string][]byte) (gen Generation, changed []string, err error) {
	owners, err := checkInstall(m, values)
	if err != nil {
		return Generation{}, nil, err
	}
	prev, err := s.Current()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Generation{}, nil, err
	}
	gen, err = s.write(ctx, m, values, owners)
	if err != nil {
		return Generation{}, nil, err
	}
	if err := s.Activate(gen); err != nil {
		os.RemoveAll(gen.Path)
		return Generation{}, nil, err
	}
	return gen, diff(prev, gen, m), nil
}

// checkInstall makes sure every secret has a value and a resolvable owner.
// A secret whose owner or group does not exist yet is root's until
// Handover: on a fresh host the first activation creates system users.
func checkInstall(m *Manifest, values map[string][]byte) ([]owner, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("installing secrets: %w: %w", ErrManifest, err)
	}
	owners := make([]owner, len(m.Secrets))
	var errs []error
	for i, sec := range m.Secrets {
		if _, ok := values[sec.Name]; !ok {
			errs = append(errs, fmt.Errorf("secret %q: no value", sec.Name))
		}
		o, err := resolveOwner(sec)
		switch {
		case errors.Is(err, errNoOwnerYet):
			o = root
		case err != nil:
			errs = append(errs, fmt.Errorf("secret %q: %w", sec.Name, err))
		}
		owners[i] = o
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("installing secrets: %w: %w", ErrManifest, err)
	}
	return owners, nil
}

// write creates a complete, synced generation directory. Its temporary
// name is unique, so a leftover of a crash never blocks it.
func (s *Store) write(ctx context.Context, m *Manifest, values map[string][]byte, owners []owner) (gen Generation, err error) {
	if err := mkdirMode(s.Root); err != nil {
		return Generation{}, err
	}
	id, err := s.nextID()
	if err != nil {
		return Generation{}, err
	}
	gen = Generation{ID: id, Path: filepath.Join(s.Root, id)}
	tmp, err := os.MkdirTemp(s.Root, tmpPrefix+id+"-")
	if err != nil {
		return gen, fmt.Errorf("creating generation: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			os.RemoveAll(gen.Path)
		}
	}()
	if err := os.Chmod(tmp, dirMode); err != nil {
		return gen, err
	}
	if err := writeSecrets(ctx, tmp, m, values, owners); err != nil {
		return gen, err
	}
	if err := os.Rename(tmp, gen.Path); err != nil {
		return gen, fmt.Errorf("renaming generation: %w", err)
	}
	return gen, syncDir(s.Root)
}

func writeSecrets(ctx context.Context, dir string, m *Manifest, values map[string][]byte, owners []owner) error {
	dirs := map[string]bool{dir: true}
	for i, sec := range m.Secrets {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(sec.Name))
		if err := mkdirParents(dir, filepath.Dir(p), dirs); err != nil {
			return fmt.Errorf("secret %q: %w", sec.Name, err)
		}
		mode, _ := sec.FileMode() // validated
		if err := writeFile(p, values[sec.Name], owners[i], mode); err != nil {
			return fmt.Errorf("secret %q: %w", sec.Name, err)
		}
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// mkdirParents creates the directories between root and dir, recording them.
func mkdirParents(root, dir string, made map[string]bool) error {
	if made[dir] {
		return nil
	}
	if dir != root {
		if err := mkdirParents(root, filepath.Dir(dir), made); err != nil {
			return err
		}
		if err := mkdirMode(dir); err != nil {
			return err
		}
	}
	made[dir] = true
	return nil
}

func mkdirMode(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	return os.Chmod(dir, dirMode)
}

// writeFile writes a new file, never following a symlink, then sets its
// owner and mode (after chown, which may clear mode bits) and syncs it.
func writeFile(path string, data []byte, o owner, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscallNoFollow, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(o.uid, o.gid)
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// genID is a parsed generation name: "<number>-<boot>". Plain numbers,
// from agents before boot IDs, parse with an empty boot.
type genID struct {
	n    int
	boot string
}

func parseGenID(name string) (genID, bool) {
	num, boot, _ := strings.Cut(name, "-")
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || strconv.Itoa(n) != num || strings.ContainsAny(boot, "-/.") {
		return genID{}, false
	}
	return genID{n: n, boot: boot}, true
}

func (g genID) String() string {
	if g.boot == "" {
		return strconv.Itoa(g.n)
	}
	return strconv.Itoa(g.n) + "-" + g.boot
}

// generations lists the complete generations in Root, oldest first:
// those of other boots, then this boot's by number.
func (s *Store) generations() ([]genID, error) {
	entries, err := os.ReadDir(s.Root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var ids []genID
	for _, e := range entries {
		if g, ok := parseGenID(e.Name()); ok && e.IsDir() {
			ids = append(ids, g)
		}
	}
	boot := s.boot()
	sort.Slice(ids, func(i, j int) bool {
		if a, b := ids[i].boot == boot, ids[j].boot == boot; a != b {
			return b
		}
		return ids[i].n < ids[j].n
	})
	return ids, nil
}

// nextID numbers the new generation after every one present, whatever boot.
func (s *Store) nextID() (string, error) {
	ids, err := s.generations()
	if err != nil {
		return "", err
	}
	next := 1
	for _, g := range ids {
		next = max(next, g.n+1)
	}
	return genID{n: next, boot: s.boot()}.String(), nil
}

// boot returns the short boot identity that generation names carry.
func (s *Store) boot() string {
	b := s.Boot
	if b == "" {
		raw, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
		b = strings.TrimSpace(string(raw))
	}
	b = strings.ReplaceAll(b, "-", "")
	if len(b) > 8 {
		b = b[:8]
	}
	return b
}

// Current returns the generation Link points to. When there is none the
// error wraps fs.ErrNotExist.
func (s *Store) Current() (Generation, error) {
	target, err := os.Readlink(s.Link)
	if err != nil {
		return Generation{}, fmt.Errorf("reading secrets link: %w", err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(s.Link), target)
	}
	target = filepath.Clean(target)
	if filepath.Dir(target) != filepath.Clean(s.Root) {
		return Generation{}, fmt.Errorf("secrets link %s points to %s, outside %s", s.Link, target, s.Root)
	}
	return Generation{ID: filepath.Base(target), Path: target}, nil
}

// Activate atomically points Link at gen, e.g. to roll back.
func (s *Store) Activate(gen Generation) error {
	want := filepath.Join(s.Root, gen.ID)
	if _, ok := parseGenID(gen.ID); !ok || filepath.Clean(gen.Path) != want {
		return fmt.Errorf("activating generation %q (%s): not a generation of %s", gen.ID, gen.Path, s.Root)
	}
	if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		return fmt.Errorf("activating generation %s: %w", gen.ID, errOrNotDir(err))
	}
	// The link's directory is the host's (secrets.dir = /run/secrets/app,
	// say): make it rather than fail every deployment on its absence.
	if err := os.MkdirAll(filepath.Dir(s.Link), 0o755); err != nil {
		return fmt.Errorf("activating generation %s: %w", gen.ID, err)
	}
	tmp := s.Link + tmpPrefix + gen.ID
	os.Remove(tmp)
	if err := os.Symlink(want, tmp); err != nil {
		return fmt.Errorf("activating generation %s: %w", gen.ID, err)
	}
	if err := os.Rename(tmp, s.Link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("activating generation %s: %w", gen.ID, err)
	}
	return syncDir(filepath.Dir(s.Link))
}

func errOrNotDir(err error) error {
	if err != nil {
		return err
	}
	return errors.New("not a directory")
}

// Prune removes all but the newest Keep generations and the current one,
// and whatever an interrupted install left behind.
func (s *Store) Prune() error {
	cur, err := s.Current()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	ids, err := s.generations()
	if err != nil {
		return err
	}
	var errs []error
	for i, id := range ids {
		name := id.String()
		if name == cur.ID || len(ids)-i <= s.Keep {
			continue
		}
		errs = append(errs, os.RemoveAll(filepath.Join(s.Root, name)))
	}
	errs = append(errs, s.Clean())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pruning secrets generations: %w", err)
	}
	return nil
}

// Clean removes what a crash in the middle of Install or Activate leaves:
// half-written generations and temporary links. It is safe to run (and to
// be interrupted) at any time no Install runs.
func (s *Store) Clean() error {
	var errs []error
	entries, err := os.ReadDir(s.Root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			errs = append(errs, os.RemoveAll(filepath.Join(s.Root, e.Name())))
		}
	}
	links, _ := filepath.Glob(s.Link + tmpPrefix + "*")
	for _, l := range links {
		errs = append(errs, os.Remove(l))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleaning up secrets: %w", err)
	}
	return nil
}
