package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
)

// MaxWalk bounds how many release commits Find reads, newest first.
const MaxWalk = 1000

// Verifier checks the armored signature of a release commit over payload,
// made at time at, and returns who signed it. gitsync.SSHPolicy with
// Namespace and Exclusive set is the one hosts use.
type Verifier interface {
	Verify(armored string, payload []byte, at time.Time) (string, error)
}

// Finder reads releases from the local copy of the fleet repository.
type Finder struct {
	// RepoDir is the bare repository the agent fetches into.
	RepoDir string
	// Branch is the release branch; empty means Branch.
	Branch string
	// Verifier decides which signatures are trusted.
	Verifier Verifier
}

// Found is a trusted release and where it came from.
type Found struct {
	Release
	// ID is the hash of the release commit on the branch.
	ID string
	// Signer is who signed it, as the Verifier reports (principals).
	Signer string
}

// Find returns the newest trusted release of commit. It returns ErrNotYet
// when the branch holds no release of commit; when it holds only releases
// that are not trusted, the newest one's error (wrapping ErrUntrusted).
// Releases of other commits are never returned: the caller passes the exact
// commit it verified.
func (f Finder) Find(ctx context.Context, commit string) (Found, error) {
	return f.walk(ctx, func(r Release) bool { return r.Commit == commit })
}

// Latest returns the newest trusted release, of any commit.
func (f Finder) Latest(ctx context.Context) (Found, error) {
	return f.walk(ctx, func(Release) bool { return true })
}

// walk reads the branch from its head, first parents only, and returns
// the first release that match accepts and the Verifier trusts.
func (f Finder) walk(ctx context.Context, match func(Release) bool) (Found, error) {
	repo, closeRepo, err := open(f.RepoDir)
	if err != nil {
		return Found{}, err
	}
	defer closeRepo()
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(f.branch()), true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return Found{}, fmt.Errorf("%w: branch %s does not exist", ErrNotYet, f.branch())
	}
	if err != nil {
		return Found{}, fmt.Errorf("reading branch %s: %w", f.branch(), err)
	}
	var untrusted error
	h := ref.Hash()
	for range MaxWalk {
		if err := ctx.Err(); err != nil {
			return Found{}, err
		}
		c, err := repo.CommitObject(h)
		if err != nil {
			return Found{}, fmt.Errorf("reading release commit %s: %w", h, err)
		}
		if r, err := read(c); err == nil && match(r) {
			found, err := f.trust(c, r)
			if err == nil {
				return found, nil
			}
			untrusted = cmpOr(untrusted, err)
		}
		if c.NumParents() == 0 {
			break
		}
		h = c.ParentHashes[0]
	}
	if untrusted != nil {
		return Found{}, untrusted
	}
	return Found{}, fmt.Errorf("%w on branch %s", ErrNotYet, f.branch())
}

// trust checks the signature of release commit c holding r.
func (f Finder) trust(c *object.Commit, r Release) (Found, error) {
	payload, err := gitsync.CommitPayload(c)
	if err != nil {
		return Found{}, fmt.Errorf("reading release commit %s: %w", c.Hash, err)
	}
	signer, err := f.Verifier.Verify(c.PGPSignature, payload, c.Committer.When)
	if errors.Is(err, gitsync.ErrUnsigned) {
		return Found{}, fmt.Errorf("%w: release %s of %s carries no signature", ErrUntrusted, short(c.Hash.String()), short(r.Commit))
	}
	if err != nil {
		return Found{}, fmt.Errorf("%w: release %s of %s: %w", ErrUntrusted, short(c.Hash.String()), short(r.Commit), err)
	}
	return Found{Release: r, ID: c.Hash.String(), Signer: signer}, nil
}

func (f Finder) branch() string {
	if f.Branch == "" {
		return Branch
	}
	return f.Branch
}

// read decodes the release document of commit c.
func read(c *object.Commit) (Release, error) {
	file, err := c.File(File)
	if err != nil {
		return Release{}, fmt.Errorf("%w: commit %s has no %s: %w", ErrInvalid, c.Hash, File, err)
	}
	rd, err := file.Reader()
	if err != nil {
		return Release{}, err
	}
	defer rd.Close()
	b, err := io.ReadAll(io.LimitReader(rd, maxDocument))
	if err != nil {
		return Release{}, err
	}
	return Decode(b)
}

// maxDocument bounds the size of a release document read into memory.
const maxDocument = 4 << 20

// objectCacheSize bounds go-git's object cache, as gitsync does.
const objectCacheSize = 4 * cache.MiByte

// open opens the bare repository in dir.
func open(dir string) (*git.Repository, func(), error) {
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRU(objectCacheSize))
	repo, err := git.Open(st, nil)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	return repo, func() { st.Close() }, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// AllowedSigners is the Verifier hosts use: an SSH signature in Namespace by
// a key that allowedSignersFile lists under principal, in an entry that
// cannot also sign commits (namespaces="avalanche-release").
func AllowedSigners(allowedSignersFile, principal string) gitsync.SSHPolicy {
	return gitsync.SSHPolicy{AllowedSignersFile: allowedSignersFile, Namespace: Namespace, Principal: principal, Exclusive: true}
}
