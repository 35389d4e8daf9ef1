package gitsync

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// tokenUser is the basic auth user name sent with a token. Forges ignore
// it for personal access tokens, but it must not be empty.
const tokenUser = "avalanche"

// session holds what one Fetch needs to talk to the remote.
type session struct {
	url       string // as given, for go-git
	shown     string // redacted, for messages
	auth      transport.AuthMethod
	secret    string // token to scrub from errors
	ep        *transport.Endpoint
	transport transport.Transport
	caps      *capability.List // the remote's, from the ref advertisement
}

// displayURL returns the remote URL with any password removed.
func (r Remote) displayURL() string {
	u, err := url.Parse(r.URL)
	if err != nil || u.User == nil || u.Scheme == "" {
		return r.URL
	}
	return u.Redacted()
}

// newSession resolves the transport and credentials for r.
func (r Remote) newSession(ctx context.Context) (*session, error) {
	s := &session{url: r.URL, shown: r.displayURL()}
	ep, err := transport.NewEndpoint(r.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing remote url %s: %w", s.shown, err)
	}
	switch ep.Protocol {
	case "http", "https":
		err = s.httpAuth(r)
	case "ssh":
		err = s.sshAuth(ctx, r, ep.User)
	case "file":
	default:
		err = fmt.Errorf("unsupported protocol %q", ep.Protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", s.shown, err)
	}
	s.ep = ep
	if s.transport, err = client.NewClient(ep); err != nil {
		return nil, fmt.Errorf("fetching %s: %w", s.shown, err)
	}
	return s, nil
}

func (s *session) httpAuth(r Remote) error {
	if r.TokenFile == "" {
		return nil
	}
	b, err := os.ReadFile(r.TokenFile)
	if err != nil {
		return &classErr{class: ErrAuth, err: fmt.Errorf("reading token file: %w", err)}
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return &classErr{class: ErrAuth, err: fmt.Errorf("token file %s is empty", r.TokenFile)}
	}
	s.auth = &githttp.BasicAuth{Username: tokenUser, Password: token}
	s.secret = token
	return nil
}

func (s *session) sshAuth(ctx context.Context, r Remote, user string) error {
	if r.SSHKeyFile == "" || r.KnownHostsFile == "" {
		return &classErr{class: ErrAuth, err: fmt.Errorf("ssh remotes need both an ssh key file and a known_hosts file")}
	}
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, r.SSHKeyFile, "")
	if err != nil {
		return &classErr{class: ErrAuth, err: fmt.Errorf("reading ssh key file %s: %w", r.SSHKeyFile, err)}
	}
	check, err := knownhosts.New(r.KnownHostsFile)
	if err != nil {
		return &classErr{class: ErrHostKey, err: fmt.Errorf("reading known_hosts file %s: %w", r.KnownHostsFile, err)}
	}
	keys.HostKeyCallback = strictHostKey(r.KnownHostsFile, check)
	s.auth = &sshAuth{PublicKeys: keys, ctx: ctx}
	return nil
}

// hostKeyError reports a host key rejected by the known_hosts file.
type hostKeyError struct {
	host, file string
	err        error
}

func (e *hostKeyError) Error() string {
	return fmt.Sprintf("host key of %s not accepted by known_hosts file %s: %v", e.host, e.file, e.err)
}

func (e *hostKeyError) Unwrap() error { return e.err }

// strictHostKey wraps a knownhosts callback so rejections carry the file
// name; unknown hosts are rejected (no trust on first use).
func strictHostKey(file string, check ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		if err := check(host, remote, key); err != nil {
			return &hostKeyError{host: host, file: file, err: err}
		}
		return nil
	}
}

// sshAuth bounds the TCP dial by the context deadline: go-git's ssh
// transport dials without the caller's context.
type sshAuth struct {
	*gitssh.PublicKeys
	ctx context.Context
}

// ClientConfig implements gitssh.AuthMethod.
func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	if deadline, ok := a.ctx.Deadline(); ok {
		cfg.Timeout = max(time.Until(deadline), time.Millisecond)
	}
	return cfg, nil
}

// remoteFor returns an unsaved go-git remote over storage st, so fetching
// never rewrites the repository's config file.
func (s *session) remoteFor(st storage.Storer) *git.Remote {
	return git.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{s.url}})
}

// listHeads asks the remote for its refs (one ref advertisement) and
// returns the tracked branches that exist there. The first branch must exist.
func (s *session) listHeads(ctx context.Context, branches []string) (map[string]plumbing.Hash, error) {
	ups, err := s.uploadPack(ctx)
	if err != nil {
		return nil, err
	}
	defer ups.Close()
	ar, err := ups.AdvertisedReferencesContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", s.shown, classify(ctx, err, s.secret))
	}
	s.caps = ar.Capabilities
	refs, err := ar.AllReferences()
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", s.shown, err)
	}
	heads := make(map[string]plumbing.Hash, len(branches))
	for _, b := range branches {
		if ref, ok := refs[plumbing.NewBranchReferenceName(b)]; ok && ref.Type() == plumbing.HashReference {
			heads[b] = ref.Hash()
		}
	}
	if _, ok := heads[branches[0]]; !ok {
		return nil, fmt.Errorf("fetching %s: branch %q: %w", s.shown, branches[0], ErrNotFound)
	}
	return heads, nil
}
