package gitsync

import (
	"errors"
	"fmt"
)

// Limits bound what one Fetch takes in, whatever was pushed. Each pack the
// remote sends is checked as it arrives, from the sizes its object headers
// state, before anything is inflated into memory: a push of two
// near-identical 256 MiB files compresses to a few hundred KB, and
// resolving it would take gigabytes.
type Limits struct {
	// MaxObjectSize is the largest object accepted, in inflated bytes: a
	// blob, tree or commit, a delta's result, or a delta itself. go-git
	// holds a delta's base and result in memory at once.
	MaxObjectSize int64
	// MaxFetchSize is the most pack bytes received for one branch.
	MaxFetchSize int64
	// MaxObjects is the most objects in one branch's pack: go-git keeps a
	// few hundred bytes per object while it indexes the pack.
	MaxObjects int64
}

// DefaultLimits are used for the zero fields of Repo.Limits.
var DefaultLimits = Limits{
	MaxObjectSize: 16 << 20,
	MaxFetchSize:  1 << 30,
	MaxObjects:    1_000_000,
}

// orDefault returns l with zero fields taken from DefaultLimits.
func (l Limits) orDefault() Limits {
	if l.MaxObjectSize <= 0 {
		l.MaxObjectSize = DefaultLimits.MaxObjectSize
	}
	if l.MaxFetchSize <= 0 {
		l.MaxFetchSize = DefaultLimits.MaxFetchSize
	}
	if l.MaxObjects <= 0 {
		l.MaxObjects = DefaultLimits.MaxObjects
	}
	return l
}

// ErrTooLarge means a branch's new commits carry more than Limits allow.
// The fetch stopped before inflating the offending object and the branch
// was left where it was. It is a fault of the pushed commit: retrying
// cannot help until the branch moves on.
var ErrTooLarge = errors.New("pushed history over a size limit")

// TooLargeError is the error Fetch returns, or lists in
// FetchResult.Refused, for a branch refused by a limit.
type TooLargeError struct {
	// Branch and Commit are the refused branch and its remote head.
	Branch, Commit string
	// Limit names the field of Limits that was exceeded, e.g. maxObjectSize.
	Limit string
	// Max is the limit's value; Size is what the pack stated or sent.
	Max, Size int64
}

func (e *TooLargeError) Error() string {
	what := map[string]string{
		"maxObjectSize": "an object of %s (inflated)",
		"maxFetchSize":  "a pack of more than %s",
		"maxObjects":    "a pack of %s objects",
	}[e.Limit]
	return fmt.Sprintf("%v: branch %q at %s brings "+what+", over %s %s; refused before inflating it",
		ErrTooLarge, e.Branch, short(e.Commit), e.amount(e.Size), e.Limit, e.amount(e.Max))
}

func (e *TooLargeError) amount(n int64) string {
	if e.Limit == "maxObjects" {
		return fmt.Sprint(n)
	}
	return bytesText(n)
}

// Unwrap makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// limitError is what the pack check finds; the caller names the branch.
type limitError struct {
	limit     string
	max, size int64
}

func (e *limitError) Error() string {
	return fmt.Sprintf("%s %d exceeded: %d", e.limit, e.max, e.size)
}

// bytesText prints n in the largest binary unit that keeps it readable.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
