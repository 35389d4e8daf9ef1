// Package fault classifies failures where they arise. Only a commit fault
// is a verdict on a commit (recorded, the commit refused from then on);
// transient failures and host trouble are retried with backoff; a shutdown
// or a newer commit is no verdict at all: the step resumes or starts over.
//
// An error nobody classified counts as transient: a failure is blamed on a
// commit only when the code that saw it says so.
package fault

import (
	"errors"
	"syscall"
)

// Class is the kind of a failure.
type Class string

// The failure classes.
const (
	// Commit is a property of the commit: its verification, evaluation,
	// build, secrets or activation failed. Recorded, not retried.
	Commit Class = "commit"
	// Transient is the network or a busy Nix daemon. Retried with backoff.
	Transient Class = "transient"
	// Host is the host's own trouble: a disk full or read-only, out of
	// memory, a missing directory. Retried with backoff.
	Host Class = "host"
	// Shutdown is the agent stopping. No verdict; resumed after restart.
	Shutdown Class = "shutdown"
	// Superseded is a newer commit pre-empting this one. No verdict.
	Superseded Class = "superseded"
)

// Error is an error with its class.
type Error struct {
	Class Class
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the classified error.
func (e *Error) Unwrap() error { return e.Err }

// New classifies err; nil stays nil. An error already classified keeps
// its first class: the code nearest to the failure knew best.
func New(c Class, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Class: c, Err: err}
}

// Of returns err's class; unclassified errors are Transient.
func Of(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Transient
}

// Verdict reports whether failures of class c condemn the commit.
func (c Class) Verdict() bool { return c == Commit }

// Retried reports whether class c backs off and tries again.
func (c Class) Retried() bool { return c == Transient || c == Host }

// IsHostTrouble reports errors that belong to the host whatever the
// commit: no room on a disk or in memory, a read-only file system.
func IsHostTrouble(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
