package enrol

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// plan is every change of one command, made only once all are known.
type plan struct {
	root   string
	files  []string          // in the order they were planned
	data   map[string][]byte // relative path -> new content
	remove []string          // relative folders to delete
	notes  []string
}

func newPlan(root string) *plan { return &plan{root: root, data: map[string][]byte{}} }

func (p *plan) write(rel string, data []byte, format string, a ...any) {
	if _, ok := p.data[rel]; !ok {
		p.files = append(p.files, rel)
	}
	p.data[rel] = data
	p.notes = append(p.notes, fmt.Sprintf(format, a...))
}

func (p *plan) removeDir(rel string, format string, a ...any) {
	p.remove = append(p.remove, rel)
	p.notes = append(p.notes, fmt.Sprintf(format, a...))
}

// apply writes every file to a temporary file beside it first; only when
// all are written does it rename them into place and delete the removed
// folders. A failure before that leaves the repository as it was.
func (p *plan) apply() ([]string, error) {
	var temps []string
	var made []string
	undo := func() {
		for _, t := range temps {
			os.Remove(t)
		}
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	}
	for _, rel := range p.files {
		dst := filepath.Join(p.root, filepath.FromSlash(rel))
		dirs, err := mkdirs(filepath.Dir(dst))
		made = append(made, dirs...)
		if err != nil {
			undo()
			return nil, err
		}
		tmp, err := stage(dst, p.data[rel])
		if err != nil {
			undo()
			return nil, fmt.Errorf("writing %s: %w", rel, err)
		}
		temps = append(temps, tmp)
	}
	var errs []error
	for i, rel := range p.files {
		if err := os.Rename(temps[i], filepath.Join(p.root, filepath.FromSlash(rel))); err != nil {
			errs = append(errs, fmt.Errorf("writing %s: %w", rel, err))
		}
	}
	for _, rel := range p.remove {
		if err := os.RemoveAll(filepath.Join(p.root, filepath.FromSlash(rel))); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", rel, err))
		}
	}
	return p.notes, errors.Join(errs...)
}

// mkdirs creates dir and its missing parents, returning the ones it made.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			return made, err
		}
		made = append(made, missing[i])
	}
	return made, nil
}

// stage writes data to a new temporary file next to dst, synced, with
// dst's mode (0644 for a new file).
func stage(dst string, data []byte) (string, error) {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(dst); err == nil {
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
