package rebuild

import (
	"bytes"
	"io"
	"regexp"
	"sync"
)

// copyingPath is the line Nix prints when it starts fetching a path:
// copying path '/nix/store/…' from 'https://…'...
var copyingPath = regexp.MustCompile(`copying path '(/[^']+)' from '`)

// progressWriter turns nix-store's stderr into SubstituteProgress calls. A
// path counts as done when the next one starts, or when the command ends.
type progressWriter struct {
	report func(SubstituteProgress)
	size   map[string]int64

	mu      sync.Mutex
	p       SubstituteProgress
	line    []byte
	current string
}

// newProgress returns a writer reporting the fetch of missing, or nil when
// report is nil.
func newProgress(missing []PathInfo, report func(SubstituteProgress)) *progressWriter {
	if report == nil {
		return nil
	}
	w := &progressWriter{report: report, size: make(map[string]int64, len(missing))}
	for _, m := range missing {
		size := m.DownloadSize
		if size == 0 {
			size = m.NarSize
		}
		w.size[m.Path] = size
		w.p.Paths++
		w.p.Bytes += size
	}
	report(w.p)
	return w
}

// tee returns a writer that feeds w and then next (which may be nil).
func (w *progressWriter) tee(next io.Writer) io.Writer {
	switch {
	case w == nil:
		return next
	case next == nil:
		return w
	}
	return io.MultiWriter(w, next)
}

func (w *progressWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.line = append(w.line, b...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if m := copyingPath.FindSubmatch(w.line[:i]); m != nil {
			w.finish()
			w.current = string(m[1])
		}
		w.line = w.line[i+1:]
	}
	if len(w.line) > 64<<10 {
		w.line = w.line[:0] // no path line is that long
	}
	return len(b), nil
}

// done counts the last path once nix-store succeeded.
func (w *progressWriter) done() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finish()
}

// finish counts the current path, if any, and reports.
func (w *progressWriter) finish() {
	if w.current == "" {
		return
	}
	w.p.PathsDone++
	w.p.BytesDone += w.size[w.current]
	w.current = ""
	w.report(w.p)
}
