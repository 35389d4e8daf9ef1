//go:build !linux

package gitsync

import "io/fs"

// identify builds the fileID of fi from what every platform reports: a
// weaker identity than on Linux (no inode, no change time).
func identify(fi fs.FileInfo) fileID {
	return fileID{exists: true, mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}
