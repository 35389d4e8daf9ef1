package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// syscallNoFollow refuses to open a symlink as the final path component.
const syscallNoFollow = syscall.O_NOFOLLOW

// diff returns, in manifest order, the secrets of gen whose bytes, mode,
// owner or group differ from those in prev (all of them without prev).
func diff(prev, gen Generation, m *Manifest) []string {
	var changed []string
	for _, s := range m.Secrets {
		rel := filepath.FromSlash(s.Name)
		if prev.Path == "" || !sameFile(filepath.Join(prev.Path, rel), filepath.Join(gen.Path, rel)) {
			changed = append(changed, s.Name)
		}
	}
	return changed
}

// Changed returns, in manifest order, the secrets of m whose bytes, mode,
// owner or group differ between generations from and to (all of them when
// from has no Path), e.g. to restart units after returning to from.
func Changed(m *Manifest, from, to Generation) []string {
	return diff(from, to, m)
}

func sameFile(a, b string) bool {
	ia, err := os.Lstat(a)
	if err != nil {
		return false
	}
	ib, err := os.Lstat(b)
	if err != nil || ia.Mode() != ib.Mode() {
		return false
	}
	sa, oka := ia.Sys().(*syscall.Stat_t)
	sb, okb := ib.Sys().(*syscall.Stat_t)
	if !oka || !okb || sa.Uid != sb.Uid || sa.Gid != sb.Gid {
		return false
	}
	da, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	db, err := os.ReadFile(b)
	return err == nil && bytes.Equal(da, db)
}

// UnitsToRestart returns the units to restart and to reload because the
// named secrets changed, each sorted and without duplicates. A unit that
// is restarted is not also reloaded.
func UnitsToRestart(m *Manifest, changed []string) (restart, reload []string) {
	isChanged := make(map[string]bool, len(changed))
	for _, c := range changed {
		isChanged[c] = true
	}
	r, l := map[string]bool{}, map[string]bool{}
	for _, s := range m.Secrets {
		if !isChanged[s.Name] {
			continue
		}
		for _, u := range s.RestartUnits {
			r[u] = true
		}
		for _, u := range s.ReloadUnits {
			l[u] = true
		}
	}
	for u := range r {
		delete(l, u)
	}
	return sortedKeys(r), sortedKeys(l)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
