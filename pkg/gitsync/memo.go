package gitsync

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// memoLimit bounds each table of a memo; a host asks about a handful of
// commits between two changes.
const memoLimit = 64

// memo remembers answers that cannot change, so that a poll which asks the
// same questions as the last one reads nothing: whether one commit
// descends from another (commits are named by their content, parents
// included), and the verdict on a commit's signature for key files that
// were not touched since.
type memo struct {
	mu        sync.Mutex
	ancestors map[[2]plumbing.Hash]bool
	verdicts  map[verdictKey]verdict
}

type verdictKey struct {
	commit plumbing.Hash
	keys   string // Signers.identity
}

type verdict struct {
	signer string
	err    error
}

// ancestor returns the remembered answer of IsAncestor(a, c).
func (m *memo) ancestor(a, c plumbing.Hash) (found, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	found, ok = m.ancestors[[2]plumbing.Hash{a, c}]
	return found, ok
}

func (m *memo) rememberAncestor(a, c plumbing.Hash, found bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ancestors == nil || len(m.ancestors) >= memoLimit {
		m.ancestors = map[[2]plumbing.Hash]bool{}
	}
	m.ancestors[[2]plumbing.Hash{a, c}] = found
}

// verdict returns the remembered result of verifying commit with keys.
func (m *memo) verdict(k verdictKey) (verdict, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.verdicts[k]
	return v, ok
}

// rememberVerdict keeps a verification result that says something about
// the commit: a signer, or a missing or bad signature. Other errors (a key
// file that cannot be read, a missing object) are not remembered.
func (m *memo) rememberVerdict(k verdictKey, v verdict) {
	if v.err != nil && !errors.Is(v.err, ErrUnsigned) && !errors.Is(v.err, ErrBadSignature) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.verdicts == nil || len(m.verdicts) >= memoLimit {
		m.verdicts = map[verdictKey]verdict{}
	}
	m.verdicts[k] = v
}

// identity names the key files of s as they are now, by path and fileID.
// ok is false when one cannot be stat'ed or changed less than racyWindow
// before now: then a verdict must not be remembered.
func (s Signers) identity(now time.Time) (id string, ok bool) {
	var b strings.Builder
	limit := now.Add(-racyWindow).UnixNano()
	for _, f := range append([]string{s.AllowedSignersFile}, s.GPGKeyFiles...) {
		if f == "" {
			continue
		}
		fid, err := statID(f)
		if err != nil || fid.mtime >= limit || fid.ctime >= limit {
			return "", false
		}
		fmt.Fprintf(&b, "%q %+v\n", f, fid)
	}
	return b.String(), true
}
