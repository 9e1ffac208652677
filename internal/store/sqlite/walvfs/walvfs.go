// Package walvfs is the SQLite VFS tern opens its databases with: the
// engine's own (ncruces/go-sqlite3's "os") except that each connection
// gathers the frames it appends to the write-ahead log and writes them
// with one system call when the transaction commits.
//
// SQLite writes a log frame as two writes, its 24-byte header and then
// the page, so a commit that changed ten pages made twenty pwrite calls;
// under imaptest they were 7 % of tern's CPU (docs/PERFORMANCE.md,
// twenty-third pass). Here the writes to a log file that continue the
// previous one are kept in memory (at most maxGather bytes) and written
// together before anything else touches the file: a read, a size, a
// truncation, a sync, a write elsewhere, the close.
//
// The gathered frames must be in the file before any other connection,
// in this process or another, can learn that they exist. SQLite publishes
// a commit by writing the log's index header in shared memory after the
// frames, and with PRAGMA synchronous=FULL it syncs the log first (wal.c,
// walFrames: the commit's xSync comes before walIndexAppend and the
// header). Databases opened through this VFS therefore run with
// synchronous=FULL, and the sync of a commit is where the frames are
// written. Whether that sync also reaches the disk is the database's
// choice, by the URI parameter CommitFsyncParam: "1" (the default) for
// every commit durable before it returns, as synchronous=FULL promises;
// "0" for a commit that is written but not synced, which is what
// synchronous=NORMAL gave (the store then syncs the log itself for the
// writes that must be durable). A checkpoint's syncs always reach the
// disk: the log must be durable before the database file is overwritten
// from it. SQLite passes the checkpoint's sync flags apart from the
// commit's (sqlite3PagerSetFlags: checkpoint flags in the upper bits),
// and with PRAGMA checkpoint_fullfsync=1 (and fullfsync off) they are
// SYNC_FULL where a commit's are SYNC_NORMAL, which is how a log file
// tells them apart. On Linux both are the same fdatasync.
//
// Files other than logs (the database, its shared memory, temporary
// files) are the os VFS's own, unwrapped.
package walvfs

import (
	"errors"
	"sync"

	"github.com/ncruces/go-sqlite3/vfs"
)

// Name is the name to open databases with (URI parameter vfs=Name).
const Name = "tern"

// CommitFsyncParam is the URI parameter that says whether a commit's
// sync reaches the disk ("1", the default) or only writes the log ("0").
const CommitFsyncParam = "tern_commit_fsync"

// Pragmas are the PRAGMAs a database opened through this VFS must run on
// every connection, in the form of sqldb's "_pragma" parameters.
var Pragmas = []string{"synchronous(FULL)", "checkpoint_fullfsync(1)", "fullfsync(0)"}

// maxGather bounds the bytes a log file keeps before writing them: a
// large transaction writes a chunk at a time.
const maxGather = 1 << 20

func init() {
	vfs.Register(Name, Wrap(vfs.Find("")))
}

// Wrap returns base with its log files gathering their writes (Name is
// the os VFS wrapped; tests wrap one that watches the files).
func Wrap(base vfs.VFS) vfs.VFS {
	return logVFS{VFS: base}
}

type logVFS struct{ vfs.VFS }

// Open is not called by the engine for a VFS that opens by Filename.
func (v logVFS) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, flags, err := v.VFS.Open(name, flags)
	if err != nil || flags&vfs.OPEN_WAL == 0 {
		return f, flags, err
	}
	return &logFile{File: f, fsyncCommits: true}, flags, nil
}

func (v logVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	named, ok := v.VFS.(vfs.VFSFilename)
	if !ok {
		return v.Open(name.String(), flags)
	}
	f, flags, err := named.OpenFilename(name, flags)
	if err != nil || flags&vfs.OPEN_WAL == 0 {
		return f, flags, err
	}
	return &logFile{File: f, fsyncCommits: name.URIBoolean(CommitFsyncParam, true)}, flags, nil
}

// logFile is a write-ahead log whose appended writes are gathered. The
// engine uses a file from one connection at a time: no lock.
type logFile struct {
	vfs.File
	fsyncCommits bool
	gathered     *[]byte // nil when nothing is gathered
	at           int64   // file offset of (*gathered)[0]
}

var gatherPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (f *logFile) WriteAt(p []byte, off int64) (int, error) {
	if g := f.gathered; g != nil && off == f.at+int64(len(*g)) && len(*g)+len(p) <= maxGather {
		*g = append(*g, p...) // p is the engine's memory: copied
		return len(p), nil
	}
	if err := f.flush(); err != nil {
		return 0, err
	}
	if len(p) >= maxGather {
		return f.File.WriteAt(p, off)
	}
	g := gatherPool.Get().(*[]byte)
	*g = append((*g)[:0], p...)
	f.gathered, f.at = g, off
	return len(p), nil
}

// flush writes what is gathered.
func (f *logFile) flush() error {
	g := f.gathered
	if g == nil {
		return nil
	}
	f.gathered = nil
	_, err := f.File.WriteAt(*g, f.at)
	if cap(*g) <= maxGather+maxGather/4 {
		gatherPool.Put(g)
	}
	return err
}

func (f *logFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *logFile) Size() (int64, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Size()
}

func (f *logFile) Truncate(size int64) error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// Sync writes what is gathered and, unless it is a commit's sync of a
// log whose commits are not synced, syncs the file.
func (f *logFile) Sync(flags vfs.SyncFlag) error {
	if err := f.flush(); err != nil {
		return err
	}
	if !f.fsyncCommits && flags&vfs.SYNC_FULL != vfs.SYNC_FULL {
		return nil
	}
	return f.File.Sync(flags)
}

func (f *logFile) Close() error {
	return errors.Join(f.flush(), f.File.Close())
}
