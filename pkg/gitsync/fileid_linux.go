package gitsync

import (
	"io/fs"
	"syscall"
)

// identify builds the fileID of fi: device and inode tell a file replaced
// by another, the change time catches a rewrite that restored the
// modification time.
func identify(fi fs.FileInfo) fileID {
	id := fileID{exists: true, mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino, id.ctime = uint64(st.Dev), st.Ino, st.Ctim.Nano()
	}
	return id
}
