package gitsync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// fetchBranch brings branch b of the copy to want: it asks the remote for
// the objects that want has and the haves do not (only commits when filter
// is set and the remote supports filters), checks the pack against lim as
// it arrives, indexes it into the copy (pack and index synced), then moves
// the branch (synced, see writeRef). unfiltered is true when filter was
// asked for but the remote cannot apply it. With tipTree, want's whole tree
// is fetched too before the branch moves. A pack over a limit returns a
// *limitError and leaves the branch as it was.
func (s *session) fetchBranch(ctx context.Context, l *local, b string, want plumbing.Hash, haves []plumbing.Hash, filter packp.Filter, tipTree bool, lim Limits) (unfiltered bool, err error) {
	if tipTree && len(haves) > 0 {
		// What changed since heads whose trees are complete: commits,
		// trees and blobs, as a fetch always did.
		filter = ""
	}
	fetched := false
	if !l.has(want) {
		req, filtered := s.request(want, haves, filter)
		unfiltered = filter != "" && !filtered
		if err := s.receive(ctx, l.dir, req, lim); err != nil {
			return false, err
		}
		l.st.Reindex()
		if !l.has(want) {
			return false, fmt.Errorf("fetching %s: the remote sent no commit %s for branch %q", s.shown, want, b)
		}
		fetched = true
	}
	// After a fetch without filter from heads whose trees are complete
	// (a branch moves only once its tree is), want's tree is complete
	// too: the pack held everything the heads do not. Walking a big tree
	// to check it would cost every incremental fetch.
	if tipTree && !(fetched && len(haves) > 0) {
		if err := s.fetchTipTree(ctx, l, want, haves, lim); err != nil {
			return false, err
		}
	}
	if err := writeRef(l.dir, b, want); err != nil {
		return false, fmt.Errorf("updating branch %q: %w", b, err)
	}
	return unfiltered, nil
}

// request builds the upload-pack request. It never asks for a thin pack,
// so every delta's base is in the same pack and the pack check sees it.
func (s *session) request(want plumbing.Hash, haves []plumbing.Hash, filter packp.Filter) (*packp.UploadPackRequest, bool) {
	req := packp.NewUploadPackRequestFromCapabilities(s.caps)
	req.Capabilities.Delete(capability.ThinPack)
	if s.caps.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	filtered := filter != "" && s.caps.Supports(capability.Filter)
	if filtered {
		_ = req.Capabilities.Set(capability.Filter)
		req.Filter = filter
	}
	req.Wants = []plumbing.Hash{want}
	req.Haves = haves
	return req, filtered
}

// receive runs one upload-pack request and installs the pack it returns.
func (s *session) receive(ctx context.Context, dir string, req *packp.UploadPackRequest, lim Limits) (err error) {
	ups, err := s.uploadPack(ctx)
	if err != nil {
		return err
	}
	defer ups.Close()
	resp, err := ups.UploadPack(ctx, req)
	if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetching %s: %w", s.shown, classify(ctx, err, s.secret))
	}
	defer resp.Close()
	var src io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		src = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		src = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	tmp, err := receivePack(dir, src, lim)
	if err != nil {
		var le *limitError
		if errors.As(err, &le) {
			return le
		}
		return fmt.Errorf("fetching %s: %w", s.shown, classify(ctx, err, s.secret))
	}
	return installPack(dir, tmp)
}

// uploadPack opens a new upload-pack session: over SSH and local paths a
// session runs one request, over HTTP each request is stateless anyway.
func (s *session) uploadPack(ctx context.Context) (transport.UploadPackSession, error) {
	ups, err := s.transport.NewUploadPackSession(s.ep, s.auth)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", s.shown, classify(ctx, err, s.secret))
	}
	return ups, nil
}

// receivePack writes the pack read from src to a temporary file in the
// copy's pack directory while checking it, and returns the file's path.
func receivePack(dir string, src io.Reader, lim Limits) (string, error) {
	f, err := os.CreateTemp(filepath.Join(dir, "objects", "pack"), "tmp_recv_")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		f.Close()
		if !ok {
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 64<<10)
	capped := &cappedReader{r: src, max: lim.MaxFetchSize}
	if _, err := checkPack(io.TeeReader(capped, w), lim); err != nil {
		return "", err
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	ok = true
	return f.Name(), nil
}

// installPack indexes the checked pack at tmp and moves it into place as
// pack-<checksum>.pack with its .idx. The pack appears last, as go-git
// writes them: go-git lists packs by their .pack files, so a crash in
// between leaves an index without pack, which nothing reads.
func installPack(dir, tmp string) (err error) {
	defer func() {
		if err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("indexing fetched pack: %w", err)
		}
	}()
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	w := new(idxfile.Writer)
	p, err := packfile.NewParser(packfile.NewScanner(f), w)
	if err != nil {
		return err
	}
	sum, err := p.Parse()
	if errors.Is(err, packfile.ErrEmptyPackfile) {
		return os.Remove(tmp)
	}
	if err != nil {
		return err
	}
	idx, err := w.Index()
	if err != nil {
		return err
	}
	base := filepath.Join(dir, "objects", "pack", "pack-"+sum.String())
	if err := writeIndex(base+".idx.tmp", idx); err != nil {
		return err
	}
	for _, mv := range [][2]string{{base + ".idx.tmp", base + ".idx"}, {tmp, base + ".pack"}} {
		if err := os.Chmod(mv[0], 0o444); err != nil {
			return err
		}
		if err := os.Rename(mv[0], mv[1]); err != nil {
			return err
		}
	}
	return syncDir(filepath.Join(dir, "objects", "pack"))
}

// writeIndex writes and flushes a pack index.
func writeIndex(path string, idx *idxfile.MemoryIndex) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	if _, err := idxfile.NewEncoder(w).Encode(idx); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// has reports whether the copy holds object h.
func (l *local) has(h plumbing.Hash) bool {
	return l.st.HasEncodedObject(h) == nil
}
