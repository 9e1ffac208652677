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
// together with the page of a commit's last frame, or before anything
// else touches the file or its shared memory (below).
//
// The gathered frames must be in the file before any other connection,
// in this process or another, can learn that they exist, and before the
// connection gives up the log's write lock: frames of a transaction that
// was rolled back after it spilled pages to the log are garbage, and
// written later they would land on frames another writer committed in
// between. Both happen through the log's shared memory, which SQLite
// reaches through the database file (xShmLock, xShmBarrier, xShmMap): a
// commit is published by writing the log's index header there, copy,
// barrier, copy (wal.c, walIndexWriteHdr), and the write lock is taken and
// released there. The database file is therefore wrapped too (dbFile),
// and each use of its shared memory first writes what the connection's
// log gathered. A commit's frames are written as soon as the page of its
// last frame (the one whose header carries the database's new size) is
// written, before SQLite syncs the log or touches the index, so a failed
// write fails the commit itself whatever the synchronous setting. A log
// whose database's dbFile is not found (the engine's wrapping of it
// changed) does not gather at all (plainLog).
//
// The databases run with PRAGMA synchronous=FULL, so a commit syncs the
// log before it touches the index (wal.c, walFrames); whether that sync
// reaches the disk is the database's choice, by the URI parameter
// CommitFsyncParam: "1" (the default) for
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
// A write that fails when gathered bytes are written leaves the log
// failed: every later call on it returns that error (the engine then
// fails the transaction, and sqldb closes a connection that had an I/O
// error), so no commit can follow that is missing frames.
//
// Files other than logs and main databases (temporary files, journals)
// are the os VFS's own, unwrapped.
package walvfs

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	if err != nil {
		return f, flags, err
	}
	return wrapFile(f, flags, nil, true), flags, nil
}

func (v logVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	named, ok := v.VFS.(vfs.VFSFilename)
	if !ok {
		return v.Open(name.String(), flags)
	}
	f, flags, err := named.OpenFilename(name, flags)
	if err != nil {
		return f, flags, err
	}
	var db *dbFile
	if flags&vfs.OPEN_WAL != 0 {
		db = databaseOf(name.DatabaseFile())
	}
	return wrapFile(f, flags, db, name.URIBoolean(CommitFsyncParam, true)), flags, nil
}

// wrapFile wraps a main database as a dbFile and a log as a logFile
// (linked to its database's dbFile, db, when known); other files stay as
// they are.
func wrapFile(f vfs.File, flags vfs.OpenFlag, db *dbFile, fsyncCommits bool) vfs.File {
	switch {
	case flags&vfs.OPEN_MAIN_DB != 0:
		return &dbFile{File: f}
	case flags&vfs.OPEN_WAL != 0 && db != nil:
		l := &logFile{plainLog: plainLog{File: f, fsyncCommits: fsyncCommits}, db: db}
		db.log = l
		return l
	case flags&vfs.OPEN_WAL != 0:
		// Without its database's file, nothing would write what a log
		// gathered before the write lock goes: no gathering, only the
		// choice of syncing commits.
		return &plainLog{File: f, fsyncCommits: fsyncCommits}
	}
	return f
}

// databaseOf finds the dbFile under f, the engine's file object of a
// log's database (which the engine may have wrapped: vfs.FileUnwrap).
func databaseOf(f vfs.File) *dbFile {
	for f != nil {
		if d, ok := f.(*dbFile); ok {
			return d
		}
		u, ok := f.(vfs.FileUnwrap)
		if !ok {
			return nil
		}
		f = u.Unwrap()
	}
	return nil
}

// logFile is a write-ahead log whose appended writes are gathered. The
// engine uses a connection's files from one goroutine at a time: no lock.
type logFile struct {
	plainLog           // the file, and whether commits are synced
	db         *dbFile // the connection's database
	gathered   *[]byte // nil when nothing is gathered
	at         int64   // file offset of (*gathered)[0]
	failed     error   // a write of gathered bytes failed: the log is unusable
	commitPage bool    // the last write was the header of a commit's last frame
}

var gatherPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// frameHeaderSize is the size of a WAL frame's header, which the engine
// writes by itself before the frame's page; its bytes 4-7 are the
// database's size after the commit in a commit's last frame, zero in any
// other (SQLite's file format, "WAL Frame Format").
const frameHeaderSize = 24

func (f *logFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.gather(p, off)
	if err == nil && f.commitPage && len(p) != frameHeaderSize {
		// The page of a commit's last frame: the commit goes to the file
		// now, and a failure fails the commit, whatever the database's
		// synchronous setting.
		f.commitPage = false
		err = f.flush()
	}
	if err == nil && len(p) == frameHeaderSize && binary.BigEndian.Uint32(p[4:8]) != 0 {
		f.commitPage = true
	}
	return n, err
}

// gather adds p, to be written at off, to what is gathered.
func (f *logFile) gather(p []byte, off int64) (int, error) {
	if f.failed != nil {
		return 0, f.failed
	}
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

// flush writes what is gathered; after a failure it fails for good.
func (f *logFile) flush() error {
	g := f.gathered
	if g == nil {
		return f.failed
	}
	f.gathered = nil
	if _, err := f.File.WriteAt(*g, f.at); err != nil {
		f.failed = fmt.Errorf("write gathered log frames: %w", err)
	}
	if cap(*g) <= maxGather+maxGather/4 {
		gatherPool.Put(g)
	}
	return f.failed
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

// Sync writes what is gathered, then syncs as a plainLog does.
func (f *logFile) Sync(flags vfs.SyncFlag) error {
	f.commitPage = false
	if err := f.flush(); err != nil {
		return err
	}
	return f.plainLog.Sync(flags)
}

func (f *logFile) Close() error {
	if f.db.log == f {
		f.db.log = nil
	}
	return errors.Join(f.flush(), f.File.Close())
}

// plainLog is a log that writes as the engine asks (a logFile's file, or
// a log whose database's dbFile was not found) and syncs a commit only if
// commits are synced; a checkpoint's sync (SYNC_FULL) always.
type plainLog struct {
	vfs.File
	fsyncCommits bool
}

func (f *plainLog) Sync(flags vfs.SyncFlag) error {
	if !f.fsyncCommits && flags&vfs.SYNC_FULL != vfs.SYNC_FULL {
		return nil
	}
	return f.File.Sync(flags)
}

// dbFile is a main database file. The engine reaches the log's shared
// memory through it, to publish a commit and to take or release the
// log's locks: each time, what the connection's log gathered is written
// first. The optional interfaces the os VFS's files have are passed on.
type dbFile struct {
	vfs.File
	log *logFile // the connection's log while it is open
}

func (f *dbFile) SharedMemory() vfs.SharedMemory {
	if f.log != nil {
		f.log.flush() // a failure stays with the log (logFile.failed)
	}
	if s, ok := f.File.(vfs.FileSharedMemory); ok {
		return s.SharedMemory()
	}
	return nil
}

func (f *dbFile) Unwrap() vfs.File { return f.File }

func (f *dbFile) MemoryMapper() vfs.MemoryMapper {
	if m, ok := f.File.(vfs.FileMemoryMapper); ok {
		return m.MemoryMapper()
	}
	return nil
}

func (f *dbFile) LockState() vfs.LockLevel {
	if l, ok := f.File.(vfs.FileLockState); ok {
		return l.LockState()
	}
	return vfs.LOCK_NONE
}

func (f *dbFile) SizeHint(size int64) error {
	if h, ok := f.File.(vfs.FileSizeHint); ok {
		return h.SizeHint(size)
	}
	return nil
}

func (f *dbFile) HasMoved() (bool, error) {
	if m, ok := f.File.(vfs.FileHasMoved); ok {
		return m.HasMoved()
	}
	return false, nil
}

func (f *dbFile) PersistWAL() bool {
	p, ok := f.File.(vfs.FilePersistWAL)
	return ok && p.PersistWAL()
}

func (f *dbFile) SetPersistWAL(keep bool) {
	if p, ok := f.File.(vfs.FilePersistWAL); ok {
		p.SetPersistWAL(keep)
	}
}

func (f *dbFile) PowersafeOverwrite() bool {
	p, ok := f.File.(vfs.FilePowersafeOverwrite)
	return ok && p.PowersafeOverwrite()
}

func (f *dbFile) SetPowersafeOverwrite(psow bool) {
	if p, ok := f.File.(vfs.FilePowersafeOverwrite); ok {
		p.SetPowersafeOverwrite(psow)
	}
}

// errNoAtomicWrite answers the batch-atomic-write controls on a file
// without them (the engine asks only where DeviceCharacteristics offers
// them, which comes from the same file).
var errNoAtomicWrite = errors.New("batch atomic write not supported")

func (f *dbFile) BeginAtomicWrite() error {
	if a, ok := f.File.(vfs.FileBatchAtomicWrite); ok {
		return a.BeginAtomicWrite()
	}
	return errNoAtomicWrite
}

func (f *dbFile) CommitAtomicWrite() error {
	if a, ok := f.File.(vfs.FileBatchAtomicWrite); ok {
		return a.CommitAtomicWrite()
	}
	return errNoAtomicWrite
}

func (f *dbFile) RollbackAtomicWrite() error {
	if a, ok := f.File.(vfs.FileBatchAtomicWrite); ok {
		return a.RollbackAtomicWrite()
	}
	return errNoAtomicWrite
}
