// Package vfshook wraps an SQLite VFS (ncruces/go-sqlite3) so that tests
// can watch or fail the writes, reads and syncs of some of its files: the
// store's tests of walvfs, sqldb and the fsync modes use it.
package vfshook

import "github.com/ncruces/go-sqlite3/vfs"

// Hooks are called before the call they name on the files whose open
// flags share a bit with Files (vfs.OPEN_WAL, vfs.OPEN_MAIN_DB, ...); an
// error is returned instead of making the call, and a nil hook lets the
// call through. A hooked file hides the optional interfaces of the file
// under it (a main database in WAL mode needs its shared memory: hook its
// log instead, or use another journal mode).
type Hooks struct {
	Files   vfs.OpenFlag
	WriteAt func(p []byte, off int64) error
	ReadAt  func(p []byte, off int64) error
	Sync    func(flags vfs.SyncFlag) error
}

// Wrap returns base, which must open by vfs.Filename (the os VFS does),
// with h on its files.
func Wrap(base vfs.VFS, h *Hooks) vfs.VFS { return hookedVFS{VFS: base, h: h} }

// File returns f with h on it, whatever its kind.
func File(f vfs.File, h *Hooks) vfs.File { return &hookedFile{File: f, h: h} }

type hookedVFS struct {
	vfs.VFS
	h *Hooks
}

func (v hookedVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, flags, err := v.VFS.(vfs.VFSFilename).OpenFilename(name, flags)
	if err != nil || flags&v.h.Files == 0 {
		return f, flags, err
	}
	return File(f, v.h), flags, nil
}

type hookedFile struct {
	vfs.File
	h *Hooks
}

func (f *hookedFile) WriteAt(p []byte, off int64) (int, error) {
	if f.h.WriteAt != nil {
		if err := f.h.WriteAt(p, off); err != nil {
			return 0, err
		}
	}
	return f.File.WriteAt(p, off)
}

func (f *hookedFile) ReadAt(p []byte, off int64) (int, error) {
	if f.h.ReadAt != nil {
		if err := f.h.ReadAt(p, off); err != nil {
			return 0, err
		}
	}
	return f.File.ReadAt(p, off)
}

func (f *hookedFile) Sync(flags vfs.SyncFlag) error {
	if f.h.Sync != nil {
		if err := f.h.Sync(flags); err != nil {
			return err
		}
	}
	return f.File.Sync(flags)
}
