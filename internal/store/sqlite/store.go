// Package sqlite is tern's default storage backend: one SQLite database for
// the user list (tern.db) and, per user, a directory users/<id>/ holding that
// user's own SQLite database (mail.db) and the message bodies as immutable
// files under blobs/.
//
// Per-user databases give isolation by construction (an Account can only
// ever address its own database) and let different users write in
// parallel. Writes to one user's database are serialized in Go by a mutex;
// reads run concurrently (WAL mode).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
	"github.com/tern-imap/tern/internal/store/sqlite/walvfs"
)

// Options configures a Store.
type Options struct {
	// Notifier is told after every committed change to a mailbox. May be nil.
	Notifier store.Notifier
	// Logger receives warnings (e.g. a blob file that could not be removed).
	// Nil means slog.Default().
	Logger *slog.Logger
	// InlineBodyMax is the largest message body kept in mail.db rather
	// than in a file of its own (see bodiesTable). Zero means
	// DefaultInlineBodyMax; a negative value keeps every body in a file.
	InlineBodyMax int
	// Fsync says which commits wait for an fsync (see FsyncMode).
	Fsync FsyncMode
	// IdleUsers is how many users' databases stay open after their last
	// Account closed, the least recently used closing first: a user who
	// logs in again soon (a client's next poll, another device) finds
	// the database open, where opening it costs milliseconds of CPU
	// (BenchmarkLogin). An idle user keeps one connection. Zero means
	// DefaultIdleUsers; a negative value closes each database with its
	// last Account.
	IdleUsers int
	// KeepBase64 writes body files as received; by default base64
	// attachments are stored decoded (packed.go).
	KeepBase64 bool
	// Server says this process is tern serve: it yields to write
	// transactions that other processes on the same files announce,
	// rather than announcing its own (writerlock.go), and it holds the
	// data directory's server.lock shared (serverlock.go).
	Server bool
	// Exclusive opens the store for a command that must not run beside
	// a server (tern check, tern store copy): Open fails with ErrServerRunning while one
	// has the store open, and a server fails to open it meanwhile
	// (ErrStoreExclusive).
	Exclusive bool
	// TextIndexer runs the background worker that indexes new mail for
	// SEARCH (fts.go, indexer.go). Without it new contents wait in the
	// queue, and SEARCH reads them, until a Store with it runs (tern
	// serve) or tern index drains the queue.
	TextIndexer bool
}

// ErrServerRunning is returned by Open with Options.Exclusive while a
// tern serve has the store open (serverlock.go).
var ErrServerRunning = errors.New("a tern serve is using this data directory; stop it first")

// ErrStoreExclusive is returned by Open with Options.Server while a
// command holds the store exclusively (tern check).
var ErrStoreExclusive = errors.New("a command that needs the store to itself (tern check, tern store copy) is running on this data directory; start the server when it has ended")

// FsyncMode chooses which commits are flushed to stable storage before
// they return.
type FsyncMode int

const (
	// FsyncAlways: every commit is fsynced before it returns; a tagged OK
	// survives a power failure.
	FsyncAlways FsyncMode = iota
	// FsyncOptimized, like Dovecot's mail_fsync=optimized: commits that
	// bring new mail into the store (APPEND, delivery), copy or move it
	// (their new UIDs go to the client, and must never be given again)
	// and change mailboxes are fsynced; flag changes, expunges and
	// \Recent claims are written to the log without waiting for the
	// disk, so they survive a crash of tern but the last few may be
	// undone by a power failure (the next fsynced commit, or a
	// checkpoint, makes them durable too). No mail can be lost that way:
	// the log is replayed in order, so a power failure undoes a suffix of
	// the commits. Body files freed by a lazy commit are removed only
	// after the log is fsynced (userDB.syncLog).
	FsyncOptimized
)

// ParseFsyncMode reads the configuration words "always" and "optimized".
func ParseFsyncMode(s string) (FsyncMode, error) {
	switch s {
	case "", "always":
		return FsyncAlways, nil
	case "optimized":
		return FsyncOptimized, nil
	}
	return 0, fmt.Errorf("fsync mode %q: want always or optimized", s)
}

// DefaultInlineBodyMax is the default Options.InlineBodyMax: most mail is
// smaller, and for it one database commit (one fsync) replaces a file
// creation, a file fsync and a directory fsync.
const DefaultInlineBodyMax = 16 << 10

// inlineMax is the largest body stored inline, from the options.
func (s *Store) inlineMax() int {
	switch {
	case s.opts.InlineBodyMax == 0:
		return DefaultInlineBodyMax
	case s.opts.InlineBodyMax < 0:
		return -1
	}
	return s.opts.InlineBodyMax
}

// DefaultIdleUsers is the default Options.IdleUsers.
const DefaultIdleUsers = 256

// idleUsers is how many user databases without open Accounts stay open,
// from the options.
func (s *Store) idleUsers() int {
	switch {
	case s.opts.IdleUsers == 0:
		return DefaultIdleUsers
	case s.opts.IdleUsers < 0:
		return 0
	}
	return s.opts.IdleUsers
}

// Store implements store.Store.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	db   *sqldb.DB // tern.db

	wmu sync.Mutex // serializes writes to tern.db
	// aclMu serializes SetACL (acl.go): a grant in tern.db is forgotten
	// only when no entry for it is left, checked under it.
	aclMu sync.Mutex

	// mu guards users, idle, gone and closed, and the refs and deleted
	// fields of every userDB. It is never held during file or database I/O:
	// opening, migrating, closing and removing a user's files happen
	// outside it, so one slow user never holds up another's login.
	mu     sync.Mutex
	users  map[int64]*userDB // open, or being opened (ready not yet closed)
	idle   []int64           // ids of cached user DBs with refs == 0, oldest first
	gone   map[int64]bool    // ids deleted by this Store (ids are never reused)
	closed bool

	// trimAfter is how long a user's database stays idle with all its
	// connections before userDB.trim (idleTrimAfter; tests shorten it).
	trimAfter time.Duration

	// serverLock is the data directory's server.lock while held
	// (Options.Server, Options.Exclusive; serverlock.go), released by
	// Close.
	serverLock *os.File

	indexer       *textIndexer // nil unless Options.TextIndexer
	lastMailWrite atomic.Int64 // UnixNano of the last Append or freeing expunge (the indexer yields to them and gathers its work)
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Pinger = (*Store)(nil)
)

// userDB is one user's open mail.db, shared by all Accounts of that user.
// It is in Store.users from the moment its opening starts; db and q are
// set, or err, before ready is closed, and read only after.
type userDB struct {
	id      int64
	name    string
	dir     string
	db      *sqldb.DB
	scan    *sqldb.DB    // connections for Fetches of many messages (openScan)
	wmu     sync.Mutex   // serializes writes
	wqMu    sync.Mutex   // guards wq, leading
	wq      []*writeOp   // writes waiting for a commit, oldest first (groupcommit.go)
	leading bool         // a goroutine is running the writes in wq
	commits atomic.Int64 // transactions commit has run (for tests)
	// sinceCheckpoint counts commits since a background checkpoint
	// started, walFrames is the log's length the last one saw;
	// checkpointing says one runs, checkpoints waits for it
	// (checkpoint.go).
	sinceCheckpoint atomic.Int64
	walFrames       atomic.Int64
	checkpointing   atomic.Bool
	checkpoints     sync.WaitGroup
	log             *slog.Logger
	// blobsSynced: blobs/ was synced since the database was opened
	// (writeBlobFile): a process that died between creating blobs/xx and
	// syncing blobs/ left an entry that may not be durable.
	blobsSynced atomic.Bool
	// testCommit, if set (tests only, before any write), replaces
	// tx.Commit in commitTx.
	testCommit func(*sqlTx) error
	refs       int
	idleAt     time.Time // when refs last fell to 0 (guarded by Store.mu)
	deleted    bool
	fsync      FsyncMode
	keepBase64 bool // write body files unpacked (Options.KeepBase64)
	// writers is the user's writers.lock; server says this process is
	// tern serve, which yields to other processes' writes instead of
	// announcing its own (writerlock.go).
	writers *writerLock
	server  bool

	ready chan struct{} // closed when opening finished (db set, or err)
	err   error         // opening failed

	contentMaps contentMaps  // mailboxes' content ids to UIDs, for full-text search (contentmap.go)
	keywords    keywordCache // keyword rows known to be stored (kwcache.go)

}

const mainSchema = `
CREATE TABLE IF NOT EXISTS users(
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	created INTEGER NOT NULL
);
` + aclGrantsSchema

// dsn returns the connection string for a database file: WAL, durable
// commits, a busy timeout and foreign keys on every connection. Pages
// are read with pread(2), not through a memory map (only the scan
// connections, openScan, map the file): in WAL mode SQLite unmaps a
// connection's whole map when it starts a read transaction after any
// other connection committed, so under writes every read transaction
// mapped the file again and faulted in each page it touched (with a
// 1 GiB map on every connection, mixed traffic cost 30 % more CPU per
// operation and flag changes 25 %; docs/PERFORMANCE.md, issue 9's ninth
// pass). Write
// transactions BEGIN IMMEDIATE, so a writer in another process (tern
// deliver, tern import beside tern serve) waits for the lock (busy
// timeout) instead of failing with SQLITE_BUSY when it upgrades from
// reading.
func dsn(path string) string { return dsnCommits(path, true) }

// dsnCommits is dsn with each commit synced (commitFsync) or only
// written to the WAL (the mail.db of a Store under FsyncOptimized, whose
// writes sync the log themselves when they must,
// userDB.syncAfterCommit). Every database opens through walvfs, which
// writes a commit's log frames with one system call; it runs SQLite with
// synchronous=FULL and decides there whether a commit's sync reaches the
// disk (walvfs.CommitFsyncParam): without it a commit survives a crash
// of the process, and only the writes that sync the log survive one of
// the machine, as under synchronous=NORMAL.
func dsnCommits(path string, commitFsync bool) string {
	fsync := "0"
	if commitFsync {
		fsync = "1"
	}
	s := "file:" + path +
		"?vfs=" + walvfs.Name +
		"&" + walvfs.CommitFsyncParam + "=" + fsync +
		"&_txlock=immediate" +
		"&_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)"
	for _, p := range walvfs.Pragmas {
		s += "&_pragma=" + p
	}
	return s + "&_pragma=foreign_keys(1)"
}

func openDB(ctx context.Context, path, schema string, commitFsync bool) (*sqldb.DB, error) {
	user := schema != mainSchema
	dsn := dsnCommits(path, commitFsync)
	if user {
		dsn += walAutoCheckpointPragma // checkpoint.go
	}
	db, err := sqldb.Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxIdleConns(4)
	if user {
		upToDate, err := migrateUserDB(ctx, db)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if upToDate {
			return db, nil // opening a user's mail is frequent: no schema parsing
		}
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("init schema of %s: %w", path, err)
	}
	if user {
		if err := setUserSchemaVersion(ctx, db); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return db, nil
}

// Open opens (creating if needed) the store under dir.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "users"), 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	serverLock, err := openServerLock(dir, opts.Server, opts.Exclusive)
	if err != nil {
		return nil, err
	}
	db, err := openDB(ctx, filepath.Join(dir, "tern.db"), mainSchema, true)
	if err != nil {
		if serverLock != nil {
			serverLock.Close()
		}
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{dir: dir, opts: opts, log: log, db: db, users: map[int64]*userDB{}, gone: map[int64]bool{}, serverLock: serverLock,
		trimAfter: idleTrimAfter}
	if opts.TextIndexer {
		s.startIndexer()
	}
	return s, nil
}

// CreateUser creates a user with an INBOX.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string) error {
	if err := backend.ValidUserName(name); err != nil {
		return err
	}
	s.wmu.Lock()
	var exists int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE name = ?`, name).Scan(&exists)
	if err != nil {
		s.wmu.Unlock()
		return fmt.Errorf("create user %q: %w", name, err)
	}
	if exists > 0 {
		s.wmu.Unlock()
		return fmt.Errorf("create user %q: %w", name, store.ErrUserExists)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO users(name, password_hash, created) VALUES(?, ?, ?)`,
		name, passwordHash, time.Now().Unix())
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("create user %q: %w", name, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("create user %q: %w", name, err)
	}
	// Create the user's directory, database and INBOX now, so problems show
	// up here rather than at first login.
	u, err := s.acquireID(ctx, id, name)
	if err != nil {
		s.wmu.Lock()
		s.db.ExecContext(context.WithoutCancel(ctx), `DELETE FROM users WHERE id = ?`, id)
		s.wmu.Unlock()
		// Ids are never reused (AUTOINCREMENT), so nothing else can be
		// in the directory of this id: what the failed open left goes.
		if rerr := os.RemoveAll(s.userDir(id)); rerr != nil {
			s.log.Warn("create user: remove the directory of the failed user", "user", name, "err", rerr)
		}
		return fmt.Errorf("create user %q: %w", name, err)
	}
	s.release(u)
	return nil
}

// DeleteUser deletes a user and all their mail. The files of a user with
// open Accounts are removed when the last one closes; a user whose
// database is being opened is removed when the open finishes.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	id, err := s.userID(ctx, name)
	if err != nil {
		return err
	}
	if err := s.revokeGrantee(ctx, name); err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	s.wmu.Lock()
	res, err := s.db.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser) // a concurrent DeleteUser won
	}
	s.mu.Lock()
	s.gone[id] = true
	u, ok := s.users[id]
	if ok {
		u.deleted = true
		if u.refs > 0 {
			s.mu.Unlock()
			return nil // the last release (or the open in progress) removes the files
		}
		s.forgetLocked(u)
	}
	s.mu.Unlock()
	if ok {
		u.closeDB(s.log)
	}
	if err := os.RemoveAll(s.userDir(id)); err != nil {
		return fmt.Errorf("delete user %q: remove files: %w", name, err)
	}
	return nil
}

// SetPasswordHash replaces a user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, name, passwordHash string) error {
	s.wmu.Lock()
	res, err := s.db.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE name = ?`, passwordHash, name)
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set password of %q: %w", name, store.ErrNoSuchUser)
	}
	return nil
}

// PasswordHash returns a user's password hash.
func (s *Store) PasswordHash(ctx context.Context, name string) (string, error) {
	var h string
	err := s.db.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE name = ?`, name).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser)
	}
	if err != nil {
		return "", fmt.Errorf("password of %q: %w", name, err)
	}
	return h, nil
}

// Users lists all user names, sorted.
func (s *Store) Users(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return names, nil
}

// Account opens one user's mail.
func (s *Store) Account(ctx context.Context, user string) (store.Account, error) {
	id, err := s.userID(ctx, user)
	if err != nil {
		return nil, err
	}
	// A DeleteUser between the lookup and the open marks the id gone (or
	// the entry deleted), which acquireID reports as ErrNoSuchUser.
	u, err := s.acquireID(ctx, id, user)
	if err != nil {
		return nil, err
	}
	// Work queued by another process (tern deliver, tern import) or
	// left by a crash is picked up when its user logs in.
	s.indexer.kick(id, user, 0)
	return &account{s: s, u: u}, nil
}

// Ping implements store.Pinger: the store is open and tern.db answers a
// trivial query that reads its schema page.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("ping store: closed")
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// Close closes every database. Accounts still open fail afterwards.
func (s *Store) Close() error {
	if s.indexer != nil {
		s.indexer.stop()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var open []*userDB
	for id, u := range s.users {
		if isReady(u) && u.err == nil {
			open = append(open, u)
		}
		delete(s.users, id) // an open in progress closes its own database
	}
	s.idle = nil
	s.mu.Unlock()
	var errs []error
	for _, u := range open {
		if err := u.closeConns(); err != nil {
			errs = append(errs, fmt.Errorf("close user %d: %w", u.id, err))
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close tern.db: %w", err))
	}
	if s.serverLock != nil {
		s.serverLock.Close() // releases the flock
	}
	return errors.Join(errs...)
}

func isReady(u *userDB) bool {
	select {
	case <-u.ready:
		return true
	default:
		return false
	}
}

// userID looks a user up.
func (s *Store) userID(ctx context.Context, name string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT id FROM users WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser)
	}
	if err != nil {
		return 0, fmt.Errorf("look up user %q: %w", name, err)
	}
	return id, nil
}

func (s *Store) userDir(id int64) string {
	return filepath.Join(s.dir, "users", strconv.FormatInt(id, 10))
}

// acquireID returns the open database of user id, opening it if needed,
// with one more reference. Concurrent callers for the same user share one
// open; the store-wide mutex is held only to find or register the entry,
// never while the database is opened or migrated.
func (s *Store) acquireID(ctx context.Context, id int64, name string) (*userDB, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("store is closed")
	}
	if s.gone[id] {
		s.mu.Unlock()
		return nil, fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser)
	}
	if u, ok := s.users[id]; ok {
		if u.deleted {
			s.mu.Unlock()
			return nil, fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser)
		}
		if u.refs == 0 {
			s.removeIdle(id)
		}
		u.refs++
		s.mu.Unlock()
		return s.waitOpen(ctx, u)
	}
	u := &userDB{id: id, name: name, dir: s.userDir(id), refs: 1, ready: make(chan struct{}), fsync: s.opts.Fsync, log: s.log, server: s.opts.Server,
		keepBase64: s.opts.KeepBase64}
	s.users[id] = u
	s.mu.Unlock()

	// The open is shared by every caller that arrives meanwhile, so one
	// caller giving up must not fail it for the others.
	db, err := s.openUser(context.WithoutCancel(ctx), u)

	s.mu.Lock()
	var remove bool
	switch {
	case err != nil:
	case s.closed:
		err = errors.New("store is closed")
	case u.deleted:
		err = fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser)
		remove = true
	}
	if err != nil {
		u.err = err
		if s.users[id] == u {
			delete(s.users, id)
		}
	} else {
		u.db = db
	}
	close(u.ready)
	s.mu.Unlock()
	if err != nil {
		if db != nil {
			db.Close()
		}
		u.closeScan()
		if u.writers != nil {
			u.writers.close()
		}
		if remove {
			if rerr := os.RemoveAll(u.dir); rerr != nil {
				s.log.Warn("remove files of deleted user", "user", name, "err", rerr)
			}
		}
		return nil, err
	}
	return u, nil
}

// waitOpen waits until u (on which the caller holds a reference) is open.
func (s *Store) waitOpen(ctx context.Context, u *userDB) (*userDB, error) {
	select {
	case <-u.ready:
	case <-ctx.Done():
		go func() { // give the reference back once the open is done
			<-u.ready
			if u.err == nil {
				s.release(u)
			}
		}()
		return nil, ctx.Err()
	}
	if u.err != nil {
		return nil, u.err // the failed entry was removed; its refs do not matter
	}
	return u, nil
}

// openUser creates (if needed), opens and migrates u's directory and
// database, without holding s.mu.
func (s *Store) openUser(ctx context.Context, u *userDB) (*sqldb.DB, error) {
	if err := os.MkdirAll(filepath.Join(u.dir, "blobs"), 0o700); err != nil {
		return nil, fmt.Errorf("open mail of %q: %w", u.name, err)
	}
	w, err := openWriterLock(u.dir)
	if err != nil {
		return nil, fmt.Errorf("open mail of %q: %w", u.name, err)
	}
	u.writers = w
	// The entries of users/<id> (in users/) and of its blobs and mail.db
	// (in users/<id>) must be durable before anything is acknowledged to
	// a client. Synced on every open, not only when created: a process
	// that died between a mkdir and its sync left an entry that exists
	// but may not be durable.
	if err := syncDir(filepath.Join(s.dir, "users")); err != nil {
		return nil, fmt.Errorf("open mail of %q: %w", u.name, err)
	}
	commitFsync := u.fsync != FsyncOptimized
	db, err := openDB(ctx, filepath.Join(u.dir, "mail.db"), userSchema+quotaSchema+threadSchema+metadataSchema+ftsSchema+ftsSideSchema+ftsVocabSchema+ftsGoneSchema+sieveSchema+aclSchema+sieveStateSchema+privateSeenSchema, commitFsync)
	if err != nil {
		return nil, fmt.Errorf("open mail of %q: %w", u.name, err)
	}
	u.db = db // ensureInbox runs on it; nobody else reads u.db before ready
	if err := u.ensureInbox(ctx); err != nil {
		u.db = nil
		return db, fmt.Errorf("open mail of %q: %w", u.name, err)
	}
	// Under FsyncOptimized the migration and the INBOX were committed
	// without a sync.
	if u.fsync == FsyncOptimized {
		if err := u.syncLog(); err != nil {
			u.db = nil
			return db, fmt.Errorf("open mail of %q: %w", u.name, err)
		}
	}
	// SQLite syncs the directory when it creates the write-ahead log, but
	// not when it creates the database file.
	if err := syncDir(u.dir); err != nil {
		u.db = nil
		return db, fmt.Errorf("open mail of %q: %w", u.name, err)
	}
	u.db = nil
	if u.scan, err = openScan(filepath.Join(u.dir, "mail.db"), commitFsync); err != nil {
		return db, fmt.Errorf("open mail of %q: %w", u.name, err)
	}
	return db, nil
}

// scanMmapSize is how much of mail.db the scan connections read through
// a memory map.
const scanMmapSize = 1 << 30

// openScan returns the scan connections of a user's mail.db (migrated
// already): a FETCH of many messages (more than one batch, sync-headers)
// reads its rows through a memory map there, with no pread per page, and
// 20 % faster than with pread. Only such scans use them: SQLite unmaps a
// connection's map whenever another connection committed since its last
// read, so the many short reads of everyday traffic, which follow writes,
// read without a map (dsn; docs/PERFORMANCE.md, issue 9's ninth pass).
// sqldb.Open connects on first use: a user who never scans costs nothing,
// and gives these connections' engine the memory the map needs (1 GiB
// of address space more each; pages count as they are read).
func openScan(path string, commitFsync bool) (*sqldb.DB, error) {
	db, err := sqldb.Open(dsnCommits(path, commitFsync) + "&_pragma=mmap_size(" + strconv.Itoa(scanMmapSize) + ")")
	if err != nil {
		return nil, fmt.Errorf("open %s for scans: %w", path, err)
	}
	db.SetMaxIdleConns(2)
	return db, nil
}

// idleTrimAfter is how long an idle user's database keeps all its
// connections: a user whose sessions come and go (a client that logs in
// for each check, several devices) finds them, prepared statements
// included, while one who left is down to one connection soon after.
const idleTrimAfter = 30 * time.Second

// trimLater trims u once it has been idle for s.trimAfter, unless a
// session took it again meanwhile (or it was closed: then there is
// nothing to trim).
func (s *Store) trimLater(u *userDB) {
	if s.trimAfter <= 0 {
		u.trim()
		return
	}
	time.AfterFunc(s.trimAfter, func() {
		s.mu.Lock()
		still := u.refs == 0 && s.users[u.id] == u && time.Since(u.idleAt) >= s.trimAfter
		s.mu.Unlock()
		if still {
			u.trim()
		}
	})
}

// trim closes the connections an idle user's database does not need:
// all but the one used last (whose page cache is the warmest), and the
// scan connections. A session that starts meanwhile may find fewer idle
// connections and open one; nothing in use is touched.
func (u *userDB) trim() {
	u.db.TrimIdle(1)
	if u.scan != nil {
		u.scan.TrimIdle(0)
	}
}

// closeScan closes the scan connections, if open.
func (u *userDB) closeScan() error {
	if u.scan == nil {
		return nil
	}
	return u.scan.Close()
}

// release drops one reference to u. Closing and removing files happen
// after s.mu is released.
func (s *Store) release(u *userDB) {
	var closeDBs []*userDB
	var removeDir string
	trim := false // u stays open idle: trim its connections later
	s.mu.Lock()
	u.refs--
	if u.refs > 0 || s.closed || s.users[u.id] != u {
		s.mu.Unlock()
		return
	}
	if u.deleted {
		s.forgetLocked(u)
		closeDBs = append(closeDBs, u)
		removeDir = u.dir
	} else {
		u.idleAt = time.Now()
		s.idle = append(s.idle, u.id)
		for len(s.idle) > s.idleUsers() {
			old := s.users[s.idle[0]]
			s.idle = s.idle[1:]
			if old != nil {
				s.forgetLocked(old)
				closeDBs = append(closeDBs, old)
			}
		}
		trim = s.users[u.id] == u // not evicted by the bound just now
	}
	s.mu.Unlock()
	for _, c := range closeDBs {
		c.closeDB(s.log)
	}
	if trim {
		s.trimLater(u)
	}
	if removeDir != "" {
		if err := os.RemoveAll(removeDir); err != nil {
			s.log.Warn("remove files of deleted user", "user", u.name, "err", err)
		}
	}
}

func (s *Store) removeIdle(id int64) {
	for i, v := range s.idle {
		if v == id {
			s.idle = append(s.idle[:i], s.idle[i+1:]...)
			return
		}
	}
}

// forgetLocked removes u from the cache; callers hold s.mu and close u's
// database (closeDB) after releasing it.
func (s *Store) forgetLocked(u *userDB) {
	s.removeIdle(u.id)
	if s.users[u.id] == u {
		delete(s.users, u.id)
	}
}

// closeDB closes an open userDB that is no longer in the cache.
func (u *userDB) closeDB(log *slog.Logger) {
	if err := u.closeConns(); err != nil {
		log.Warn("close user database", "user", u.name, "err", err)
	}
}

// notifyList tells the notifier, if it cares, that user's mailbox list
// changed.
func (s *Store) notifyList(user string) {
	if n, ok := s.opts.Notifier.(store.MailboxListNotifier); ok {
		n.MailboxListChanged(user)
	}
}

func (s *Store) notify(user string, changed map[int64]uint64) {
	if s.opts.Notifier == nil || len(changed) == 0 {
		return
	}
	ids := make([]int64, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		s.opts.Notifier.MailboxChanged(user, id, changed[id])
	}
}
