package gitsync

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/go-git/go-billy/v5"
)

// idxBufferSize is the read buffer for pack indexes: about 2,300 objects'
// worth of index per read system call.
const idxBufferSize = 64 << 10

// bufferedIdx is the repository's filesystem with pack indexes read
// through a buffer. go-git decodes an index field by field straight from
// the file, one read system call per 4 to 20 bytes, about three per object
// in the repository, every time a repository is opened.
type bufferedIdx struct {
	billy.Filesystem
}

// Open implements billy.Filesystem.
func (fs bufferedIdx) Open(name string) (billy.File, error) {
	f, err := fs.Filesystem.Open(name)
	if err != nil || !strings.HasSuffix(name, ".idx") {
		return f, err
	}
	return &bufferedFile{File: f, r: bufio.NewReaderSize(f, idxBufferSize)}, nil
}

// Chmod implements billy.Chmod when the wrapped filesystem does: go-git
// makes the packs it writes read-only through it.
func (fs bufferedIdx) Chmod(name string, mode os.FileMode) error {
	if c, ok := fs.Filesystem.(billy.Chmod); ok {
		return c.Chmod(name, mode)
	}
	return errors.ErrUnsupported
}

// Capabilities implements billy.Capable with the wrapped filesystem's.
func (fs bufferedIdx) Capabilities() billy.Capability {
	return billy.Capabilities(fs.Filesystem)
}

// bufferedFile reads a file through a buffer; ReadAt goes to the file.
type bufferedFile struct {
	billy.File
	r *bufio.Reader
}

func (f *bufferedFile) Read(p []byte) (int, error) { return f.r.Read(p) }

// Seek moves the file's offset and drops the buffer.
func (f *bufferedFile) Seek(offset int64, whence int) (int64, error) {
	if whence == io.SeekCurrent {
		offset -= int64(f.r.Buffered())
	}
	n, err := f.File.Seek(offset, whence)
	f.r.Reset(f.File)
	return n, err
}
