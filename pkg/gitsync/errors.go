package gitsync

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Sentinel errors; match them with errors.Is. Every error returned by this
// package that falls into one of these classes wraps the sentinel.
var (
	// ErrUnreachable means the remote could not be reached or the transfer
	// broke off or timed out. It is transient: retry later.
	ErrUnreachable = errors.New("remote unreachable")
	// ErrAuth means the remote refused the credentials, or they could not
	// be read. Retrying will not help until someone fixes them.
	ErrAuth = errors.New("authentication required")
	// ErrHostKey means the SSH server's host key is not accepted by the
	// configured known_hosts file.
	ErrHostKey = errors.New("host key verification failed")
	// ErrNotFound means the repository or the first tracked branch does not
	// exist on the remote.
	ErrNotFound = errors.New("not found")
	// ErrUnsigned means a commit carries no signature while signers are
	// configured.
	ErrUnsigned = errors.New("commit is not signed")
	// ErrBadSignature means a commit's signature is not valid or was not
	// made by an allowed key.
	ErrBadSignature = errors.New("bad signature")
	// ErrLocalDisk means the local copy could not be written: the disk is
	// full, over quota or read-only. Transient: retry once there is room.
	ErrLocalDisk = errors.New("local disk full or read-only")
	// ErrUnknownCommit means a commit asked about is not in the local copy,
	// e.g. the last deployed commit after a reclone from a remote whose
	// history was rewritten.
	ErrUnknownCommit = errors.New("commit not in the repository")
)

// IsTransient reports whether err is worth retrying later unchanged:
// network failures, timeouts and cancellation. Authentication, host key,
// missing branch and signature failures are not transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	for _, permanent := range []error{ErrAuth, ErrHostKey, ErrNotFound, ErrUnsigned, ErrBadSignature} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrLocalDisk) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded)
}

// classErr attaches a sentinel class to an underlying error without
// repeating the sentinel's text when the cause already starts with it.
type classErr struct {
	class error
	err   error
}

func (e *classErr) Error() string {
	msg := e.err.Error()
	if strings.HasPrefix(msg, e.class.Error()) {
		return msg
	}
	return e.class.Error() + ": " + msg
}

func (e *classErr) Unwrap() []error { return []error{e.class, e.err} }

// classify wraps a transport error with its class. secret, when not empty,
// is scrubbed from the message (the chain is dropped in that rare case so
// no wrapped value can leak it).
func classify(ctx context.Context, err error, secret string) error {
	if err == nil {
		return nil
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		err = errors.New(strings.ReplaceAll(err.Error(), secret, "REDACTED"))
	}
	if class := classOf(ctx, err); class != nil {
		return &classErr{class: class, err: err}
	}
	return err
}

// classOf returns the sentinel that err belongs to, or nil.
func classOf(ctx context.Context, err error) error {
	var hk *hostKeyError
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EROFS):
		return ErrLocalDisk
	case errors.As(err, &hk):
		return ErrHostKey
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(msg, "ssh: unable to authenticate"):
		return ErrAuth
	case errors.Is(err, transport.ErrRepositoryNotFound),
		errors.Is(err, transport.ErrEmptyRemoteRepository):
		return ErrNotFound
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ErrUnreachable
		}
		return nil // caller cancelled; the chain carries context.Canceled
	case isNetworkError(err), strings.Contains(msg, "status code: 5"):
		return ErrUnreachable
	}
	return nil
}

func isNetworkError(err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &netErr) || errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded)
}
