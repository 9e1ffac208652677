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
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/tern-imap/tern/internal/store"
)

// Options configures a Store.
type Options struct {
	// Notifier is told after every committed change to a mailbox. May be nil.
	Notifier store.Notifier
	// Logger receives warnings (e.g. a blob file that could not be removed).
	// Nil means slog.Default().
	Logger *slog.Logger
}

// maxIdleUsers is how many user databases without open Accounts stay open.
const maxIdleUsers = 64

// Store implements store.Store.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	db   *sql.DB // tern.db

	wmu sync.Mutex // serializes writes to tern.db

	mu     sync.Mutex // guards users, idle, closed
	users  map[int64]*userDB
	idle   []int64 // ids of cached user DBs with refs == 0, oldest first
	closed bool
}

var _ store.Store = (*Store)(nil)

// userDB is one user's open mail.db, shared by all Accounts of that user.
type userDB struct {
	id      int64
	name    string
	dir     string
	db      *sql.DB
	q       *stmtCache   // prepared statements, also used inside transactions
	wmu     sync.Mutex   // serializes writes
	wqMu    sync.Mutex   // guards wq, leading
	wq      []*writeOp   // writes waiting for a commit, oldest first (groupcommit.go)
	leading bool         // a goroutine is running the writes in wq
	commits atomic.Int64 // transactions commit has run (for tests)
	refs    int
	deleted bool

	dirsMu sync.Mutex
	dirs   map[string]bool // blob subdirectories known to exist
}

const mainSchema = `
CREATE TABLE IF NOT EXISTS users(
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	created INTEGER NOT NULL
);
`

// dsn returns the connection string for a database file: WAL, durable
// commits, a busy timeout and foreign keys on every connection. Write
// transactions BEGIN IMMEDIATE, so a writer in another process (tern
// deliver, tern import beside tern serve) waits for the lock (busy
// timeout) instead of failing with SQLITE_BUSY when it upgrades from
// reading.
func dsn(path string) string {
	return "file:" + path +
		"?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(1)"
}

func openDB(ctx context.Context, path, schema string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxIdleConns(4)
	if schema != mainSchema {
		if err := migrateUserDB(ctx, db); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("init schema of %s: %w", path, err)
	}
	return db, nil
}

// Open opens (creating if needed) the store under dir.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "users"), 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	db, err := openDB(ctx, filepath.Join(dir, "tern.db"), mainSchema)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{dir: dir, opts: opts, log: log, db: db, users: map[int64]*userDB{}}, nil
}

func validUserName(name string) error {
	if name == "" || len(name) > 255 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return fmt.Errorf("invalid user name %q", name)
	}
	return nil
}

// CreateUser creates a user with an INBOX.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string) error {
	if err := validUserName(name); err != nil {
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
		return fmt.Errorf("create user %q: %w", name, err)
	}
	s.release(u)
	return nil
}

// DeleteUser deletes a user and all their mail.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.userID(ctx, name)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	_, err = s.db.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	if u, ok := s.users[id]; ok {
		u.deleted = true
		if u.refs > 0 {
			return nil // the last Account.Close removes the files
		}
		s.dropLocked(u)
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
	// Look up and open under one lock, so a concurrent DeleteUser cannot
	// slip in between.
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.userID(ctx, user)
	if err != nil {
		return nil, err
	}
	u, err := s.acquireLocked(ctx, id, user)
	if err != nil {
		return nil, err
	}
	return &account{s: s, u: u}, nil
}

// Close closes every database. Accounts still open fail afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for id, u := range s.users {
		u.q.Close()
		if err := u.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close user %d: %w", id, err))
		}
		delete(s.users, id)
	}
	s.idle = nil
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close tern.db: %w", err))
	}
	return errors.Join(errs...)
}

// userID looks a user up; callers hold s.mu.
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
// with one more reference.
func (s *Store) acquireID(ctx context.Context, id int64, name string) (*userDB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acquireLocked(ctx, id, name)
}

// acquireLocked is acquireID for callers holding s.mu.
func (s *Store) acquireLocked(ctx context.Context, id int64, name string) (*userDB, error) {
	if s.closed {
		return nil, errors.New("store is closed")
	}
	if u, ok := s.users[id]; ok && !u.deleted {
		if u.refs == 0 {
			s.removeIdle(id)
		}
		u.refs++
		return u, nil
	}
	dir := s.userDir(id)
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o700); err != nil {
		return nil, fmt.Errorf("open mail of %q: %w", name, err)
	}
	syncDir(filepath.Join(s.dir, "users"))
	db, err := openDB(ctx, filepath.Join(dir, "mail.db"), userSchema+quotaSchema+threadSchema)
	if err != nil {
		return nil, fmt.Errorf("open mail of %q: %w", name, err)
	}
	u := &userDB{id: id, name: name, dir: dir, db: db, q: newStmtCache(db), refs: 1, dirs: map[string]bool{}}
	if err := u.ensureInbox(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open mail of %q: %w", name, err)
	}
	s.users[id] = u
	return u, nil
}

// release drops one reference to u.
func (s *Store) release(u *userDB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u.refs--
	if u.refs > 0 || s.closed {
		return
	}
	if u.deleted {
		s.dropLocked(u)
		if err := os.RemoveAll(u.dir); err != nil {
			s.log.Warn("remove files of deleted user", "user", u.name, "err", err)
		}
		return
	}
	s.idle = append(s.idle, u.id)
	for len(s.idle) > maxIdleUsers {
		old := s.users[s.idle[0]]
		s.idle = s.idle[1:]
		if old != nil {
			s.dropLocked(old)
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

// dropLocked closes u's database and forgets it; callers hold s.mu.
func (s *Store) dropLocked(u *userDB) {
	s.removeIdle(u.id)
	if s.users[u.id] == u {
		delete(s.users, u.id)
	}
	u.q.Close()
	if err := u.db.Close(); err != nil {
		s.log.Warn("close user database", "user", u.name, "err", err)
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
