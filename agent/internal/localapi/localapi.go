// Package localapi serves the agent's HTTP API on a unix socket, on the
// model of tailscale's LocalAPI: a route table, peer credentials checked per
// request. Members of the socket's group may read; only root and the
// operator group may act.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Backend is what the daemon provides to the API.
type Backend interface {
	Status() status.Status
	History() []state.Deployment
	Sync(ctx context.Context, wait, force bool) (status.SyncResult, error)
	Suspend(ctx context.Context) error
	Resume(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Server is the local API.
type Server struct {
	Backend Backend
	// OperatorGroup's members may act, besides root. Empty: root only.
	// Membership is the caller's own: its primary or supplementary groups
	// at connect time, as the kernel reports them.
	OperatorGroup string
}

type credKey struct{}

// Listen creates the socket at path, owned by root and group, mode 0660.
// It never leaves a world-writable socket behind.
func Listen(path, group string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket: %w", err)
	}
	old := unix.Umask(0o177) // the socket is created 0600, widened below
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	mode := os.FileMode(0o600)
	if group != "" {
		gid, err := groupID(group)
		if err != nil {
			ln.Close()
			return nil, err
		}
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chown %s: %w", path, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

func groupID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if id, convErr := strconv.Atoi(name); convErr == nil {
			return id, nil
		}
		return 0, fmt.Errorf("looking up group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// Serve answers requests on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if uc, ok := c.(*net.UnixConn); ok {
				if cred, err := peerCred(uc); err == nil {
					return context.WithValue(ctx, credKey{}, cred)
				}
			}
			return ctx
		},
	}
	go func() {
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hs.Shutdown(shutCtx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving local API: %w", err)
	}
	return nil
}

// peer is the caller as the kernel saw it when it connected: its
// effective uid and gid (SO_PEERCRED) and its supplementary groups
// (SO_PEERGROUPS), never what /etc/group says about the user.
type peer struct {
	uid, gid uint32
	groups   []uint32
}

func (p *peer) inGroup(gid uint32) bool {
	return p.gid == gid || slices.Contains(p.groups, gid)
}

// peerCred reads the caller's credentials. When the kernel cannot report
// the supplementary groups (before Linux 4.13), only the primary group
// counts: membership is never guessed.
func peerCred(c *net.UnixConn) (*peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var p *peer
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			credErr = fmt.Errorf("reading peer credentials: %w", err)
			return
		}
		groups, _ := peerGroups(int(fd))
		p = &peer{uid: cred.Uid, gid: cred.Gid, groups: groups}
	})
	if err != nil {
		return nil, err
	}
	return p, credErr
}

// peerGroups returns the supplementary groups the peer had at connect
// time. golang.org/x/sys has no wrapper for SO_PEERGROUPS: the kernel
// fills an array of gid_t and, when it is too small, answers ERANGE with
// the length it needs.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 32)
	for range 3 {
		n := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case errno == unix.ERANGE && n > uint32(len(buf)*4):
			buf = make([]uint32, n/4)
		case errno != 0:
			return nil, fmt.Errorf("getsockopt SO_PEERGROUPS: %w", errno)
		default:
			return buf[:n/4], nil
		}
	}
	return nil, errors.New("getsockopt SO_PEERGROUPS: the group list keeps growing")
}

// Handler returns the route table.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Backend.Status())
	})
	mux.HandleFunc("GET /v1/history", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Backend.History())
	})
	mux.HandleFunc("POST /v1/sync", s.act(func(r *http.Request) (any, error) {
		q := r.URL.Query()
		return s.Backend.Sync(r.Context(), q.Get("wait") == "1", q.Get("force") == "1")
	}))
	mux.HandleFunc("POST /v1/suspend", s.act(func(r *http.Request) (any, error) {
		return nil, s.Backend.Suspend(r.Context())
	}))
	mux.HandleFunc("POST /v1/resume", s.act(func(r *http.Request) (any, error) {
		return nil, s.Backend.Resume(r.Context())
	}))
	mux.HandleFunc("POST /v1/rollback", s.act(func(r *http.Request) (any, error) {
		return nil, s.Backend.Rollback(r.Context())
	}))
	return mux
}

// act wraps a handler that changes something with the operator check.
func (s *Server) act(f func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.mayAct(r.Context()); err != nil {
			writeJSON(w, http.StatusForbidden, errorBody{Error: err.Error()})
			return
		}
		v, err := f(r)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
			return
		}
		if v == nil {
			v = struct{}{}
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) mayAct(ctx context.Context) error {
	p, _ := ctx.Value(credKey{}).(*peer)
	if p == nil {
		return errors.New("permission denied: caller's credentials are unknown")
	}
	if p.uid == 0 {
		return nil
	}
	if s.OperatorGroup == "" {
		return fmt.Errorf("permission denied: uid %d is not root (no operator group is configured)", p.uid)
	}
	gid, err := groupID(s.OperatorGroup)
	if err != nil {
		return fmt.Errorf("permission denied: %w", err)
	}
	if p.inGroup(uint32(gid)) {
		return nil
	}
	return fmt.Errorf("permission denied: uid %d is neither root nor in the operator group %q (gid %d; the caller's groups: %d, %v)",
		p.uid, s.OperatorGroup, gid, p.gid, p.groups)
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
