// Package postgres is tern's scale-out storage backend: users, mailboxes,
// messages, flags, quotas and annotations of all users in one PostgreSQL
// database, message bodies in the same database or in a blob store
// (content-addressed, see bodies.go and blobs.go), so that several tern nodes can serve any user at once.
//
// Writes of one user are serialized by a lock on the user's row (every
// write transaction takes it first), which makes UID and MODSEQ
// allocation atomic across nodes, lets new UIDs become visible in
// ascending order (a mailbox's allocations commit in the order they were
// made), and keeps quotas and annotation limits exact. Different users
// write in parallel. Every committed change is announced with pg_notify
// after the commit, a few milliseconds' worth of writes together, so
// other nodes' sessions hear about it (signals.go, listen.go).
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// Options configures a Store.
type Options struct {
	// Notifier is told after every committed change to a mailbox, made
	// through this Store or (through LISTEN/NOTIFY) through any other
	// tern process on the same database. May be nil. If it is a
	// store.WatchLister, the Store also compares the heads of the
	// mailboxes it lists with the database every two seconds and after
	// its listener reconnects, reporting those whose signal was lost
	// (heads.go).
	Notifier store.Notifier
	// Logger receives warnings. Nil means slog.Default().
	Logger *slog.Logger
	// MaxConns bounds the connection pool; 0 means pool_max_conns of the
	// URL if it has one, else defaultMaxConns.
	MaxConns int32
	// Blobs keeps new message bodies outside the database (blobs.go);
	// nil keeps them in the bodies table. Bodies already in the table
	// stay readable either way.
	Blobs blob.Store
	// BlobGC, with Blobs, runs the blob garbage collector in the
	// background (tern serve); zero Every means not at all.
	BlobGC BlobGC
	// TextIndexer runs the background indexer that extracts the
	// searchable text of new mail (textindex.go; tern serve with
	// index.text). Without one, mail stays queued and SEARCH reads it.
	TextIndexer bool
	// textIndexDelay, in tests, replaces textIndexDelay.
	textIndexDelay time.Duration
	// headCheckInterval, in tests, replaces headCheckInterval.
	headCheckInterval time.Duration
	// ReadURL, if set, is a streaming replica of the database (a hot
	// standby, or a pooler in front of several): reads of rows that
	// never change once written (message bodies, and Fetches of content
	// fields alone) go there first, and to the primary when the replica
	// does not have the row yet or cannot be reached (replica.go).
	ReadURL string
	// RelaxedCommits is store.fsync = "optimized": a transaction whose
	// writes only change flags or expunge (lazyWrite) commits without
	// waiting for its WAL to reach the disk (synchronous_commit = off for
	// that transaction), as Dovecot's mail_fsync=optimized and the sqlite
	// store's FsyncOptimized. The database stays consistent and such a
	// commit is visible at once; a crash of the database server (not of
	// tern) can undo the last of them (at most about three times
	// wal_writer_delay), always a suffix. New mail (APPEND, delivery),
	// copies and moves (their UIDs go to the client) and mailbox changes
	// commit durably either way, and a durable commit makes the relaxed
	// ones before it durable too. A body released by a relaxed expunge
	// is deleted from a blob store only a grace period later (BlobGC),
	// long after that commit reached the disk.
	RelaxedCommits bool
	// Tracer, if set, observes every statement, batch and COPY the
	// Store's connections send (pgx's tracer interfaces; a test counts
	// round trips and rows with it). Nil: none.
	Tracer pgx.QueryTracer
}

// defaultMaxConns is the pool size unless the URL or Options say
// otherwise. pgxpool's own default (the larger of 4 and the number of
// CPUs) is made for CPU-bound work; a tern node's connections mostly wait
// for a commit's WAL flush or a round trip, so a FETCH queued behind four
// committing writers waited for their fsyncs (imaptest logout=0: FETCH
// 7-13 ms with 4 connections, 1-2 ms with more). Nodes × pool must stay
// below the server's max_connections (default 100): six nodes at 16.
const defaultMaxConns = 16

// BlobGC says how often unused bodies in the blob store are deleted.
type BlobGC struct {
	// Every is how often the collector runs (every node may run it).
	Every time.Duration
	// Grace is how long a body stays unused before it is deleted (its
	// row, and its object in a blob store; tern's default: an hour,
	// store.blob_grace). The races of
	// the collector with Append do not depend on it (blobs.go), but a
	// body released by a relaxed commit (RelaxedCommits, on any node)
	// needs it to outlast that commit's way to the disk: the config
	// refuses less than a minute then (config.MinRelaxedBlobGrace). It
	// also leaves time to notice a mistake, and keeps objects that a
	// database backup of that age still names.
	Grace time.Duration
	// SweepEvery is how often the whole store is listed for orphans
	// (objects of deliveries that never committed); 0 means never.
	SweepEvery time.Duration
}

// Store implements store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	// replica reads rows that never change from Options.ReadURL; nil
	// without one.
	replica *replica
	log     *slog.Logger
	node    string // random id of this Store, to recognize its own NOTIFYs

	queuesMu sync.Mutex
	queues   map[int64]*writeQueue // by user id (groupcommit.go)
	// breaks counts resets (restart.go): the listening connection broke
	// or listens again, or the server restarted; the database may have
	// lost commits not yet on its disk (relaxed ones, or an async
	// standby's lag). What accounts cached from their writes
	// (kwcache.go) is dropped then.
	breaks atomic.Uint64
	// resetMu orders a reset (restart.go) with the hand-over of writes'
	// deltas (finish).
	resetMu sync.RWMutex
	// serverStart is the start time of the database server the pool's
	// connections reach, unix microseconds (restart.go); 0: none yet.
	serverStart atomic.Int64
	commits     atomic.Int64 // write transactions run (for tests)
	// fence and deleteWindow are deleteFence and deleteWindow
	// (blobs.go); tests shorten them.
	fence, deleteWindow time.Duration
	// Hooks for tests of the blob collector's races. gcHook is called by
	// the collector after it marked a row, before (deleted false) and
	// after (true) it deletes the object; an error stops the collector
	// there, as a crash would. appendHook is called by Append after it
	// put the objects and before its transaction.
	gcHook     func(hash []byte, deleted bool) error
	appendHook func()

	stopGC context.CancelFunc
	gcDone chan struct{}

	stopIndexer context.CancelFunc
	indexerDone chan struct{}

	stopListen context.CancelFunc
	listenDone chan struct{}
	// recheck asks for a check of the watched mailboxes' heads now
	// (heads.go); headsDone is closed when the checker stopped.
	recheck   chan struct{}
	headsDone chan struct{}
	// headsSeen is what the checks of the watched mailboxes found
	// (heads.go), raised by every change the node makes or hears of.
	headsSeen headsSeen
	// signals are this node's change signals waiting to be sent to the
	// other nodes (signals.go).
	signals signaler
	// sharers keeps Sharers' answers (acl.go).
	sharers   sharersCache
	closeOnce sync.Once
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Pinger = (*Store)(nil)
)

// querier is what a pool, a connection and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// dbtx is what a write runs its statements on: the connection of the
// write transaction (groupcommit.go).
type dbtx interface {
	querier
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// preferLZ4 has the values a connection stores (message bodies kept in
// PostgreSQL, the contents' larger columns) compressed with LZ4 rather
// than pglz, which cost PostgreSQL about five times the CPU per body on
// bench mail (docs/PERFORMANCE.md, twenty-fourth pass). A session
// setting, not the columns' own: it takes no lock, stays out of backups
// (which then restore on any server) and applies wherever the server has
// LZ4; a server without it (built without, or before version 14) refuses
// the setting and keeps pglz. Values stored before stay as they are;
// both read back alike.
func preferLZ4(ctx context.Context, conn *pgx.Conn) error {
	conn.Exec(ctx, `SET default_toast_compression = lz4`) // refused: pglz
	return nil
}

// Open connects to the database at url (postgres://...), brings its
// schema up to date and, with a Notifier, starts listening for changes
// made by other processes.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{opts: opts, log: log, node: randomHex(8), queues: map[int64]*writeQueue{}, fence: deleteFence, deleteWindow: deleteWindow}
	s.sharers.enabled = opts.Notifier != nil
	cfg.ConnConfig.DialFunc = dialMarked(cfg.ConnConfig.DialFunc)
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		preferLZ4(ctx, conn)
		return s.checkServerStart(ctx, conn) // restart.go
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s.pool = pool
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if opts.ReadURL != "" {
		breaks := s.breaks.Load()
		r, err := openReplica(ctx, pool, opts.ReadURL, cfg.MaxConns, opts.Tracer, log)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres store: %w", err)
		}
		// A reset may run already (AfterConnect); one that ran after the
		// first mark was written wants a new one.
		s.resetMu.Lock()
		s.replica = r
		if s.breaks.Load() != breaks {
			r.rearm()
		}
		s.resetMu.Unlock()
	}
	s.startSignals()
	if opts.Notifier != nil {
		if err := s.startListening(ctx, cfg.ConnConfig); err != nil {
			s.stopSignals()
			pool.Close()
			if s.replica != nil {
				s.replica.pool.Close()
			}
			return nil, fmt.Errorf("postgres store: %w", err)
		}
	}
	if opts.BlobGC.Every > 0 {
		gcCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.stopGC, s.gcDone = stop, make(chan struct{})
		go func() {
			defer close(s.gcDone)
			s.collectBlobsEvery(gcCtx, opts.BlobGC)
		}()
	}
	if opts.TextIndexer {
		ixCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.stopIndexer, s.indexerDone = stop, make(chan struct{})
		go func() {
			defer close(s.indexerDone)
			s.indexTextEvery(ixCtx)
		}()
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateUser creates a user with an INBOX.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string) error {
	if err := backend.ValidUserName(name); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO users(name, password_hash) VALUES($1, $2)
			ON CONFLICT (name) DO NOTHING RETURNING id`, name, passwordHash).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrUserExists
		}
		if err != nil {
			return err
		}
		_, err = insertMailbox(ctx, tx, id, "INBOX", "")
		return err
	})
	if err != nil {
		return fmt.Errorf("create user %q: %w", name, err)
	}
	return nil
}

// inTx runs fn in a READ COMMITTED transaction and commits it; a
// serialization failure or deadlock runs it again.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || attempt >= maxRetries || !retryable(err) {
			return err
		}
		s.log.Debug("postgres store: retrying a transaction", "err", err)
	}
}

// maxRetries bounds how often a write is retried after a deadlock or
// serialization failure.
const maxRetries = 5

// retryable reports whether err is a transient conflict: running the
// transaction again may succeed.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// noSuchUser is the answer for a name that cannot be a user's (NUL or
// invalid UTF-8, which PostgreSQL text cannot even hold), given without
// asking the database.
func noSuchUser(name string) error {
	if backend.ValidUserName(name) != nil {
		return fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser)
	}
	return nil
}

// DeleteUser deletes a user and all their mail. Open Accounts of the user
// find nothing afterwards.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	if err := noSuchUser(name); err != nil {
		return err
	}
	var gone map[int64]uint64 // the user's mailboxes, for the replica's floor
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM users WHERE name = $1 FOR UPDATE`, name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNoSuchUser
		}
		if err != nil {
			return err
		}
		if s.replica != nil {
			if gone, err = userMailboxes(ctx, tx, id); err != nil {
				return err
			}
		}
		// The bodies the user's contents use lose those references.
		dead, err := deadBodies(ctx, tx, `SELECT body_hash, count(*) FROM contents WHERE user_id = $1 GROUP BY body_hash`, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id); err != nil {
			return err
		}
		// Entries naming the user go too: a new user of the same name
		// inherits nothing.
		if _, err := tx.Exec(ctx, `DELETE FROM acl WHERE identifier = $1`, name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM private_seen WHERE viewer = $1`, name); err != nil {
			return err
		}
		return releaseBodies(ctx, tx, dead)
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	s.raiseFloor(gone)
	return nil
}

// userMailboxes returns the ids of user id's mailboxes, each with a
// modseq above its own: raised to these, the replica's floor keeps the
// replica from answering for them once they are deleted.
func userMailboxes(ctx context.Context, tx pgx.Tx, id int64) (map[int64]uint64, error) {
	rows, err := tx.Query(ctx, `SELECT id, highestmodseq + 1 FROM mailboxes WHERE user_id = $1`, id)
	if err != nil {
		return nil, err
	}
	out := map[int64]uint64{}
	var box, ms int64
	_, err = pgx.ForEachRow(rows, []any{&box, &ms}, func() error {
		out[box] = uint64(ms)
		return nil
	})
	return out, err
}

// SetPasswordHash replaces a user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, name, passwordHash string) error {
	if err := noSuchUser(name); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password_hash = $2 WHERE name = $1`, name, passwordHash)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set password of %q: %w", name, store.ErrNoSuchUser)
	}
	return nil
}

// PasswordHash returns a user's password hash.
func (s *Store) PasswordHash(ctx context.Context, name string) (string, error) {
	if err := noSuchUser(name); err != nil {
		return "", err
	}
	var h string
	err := s.pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE name = $1`, name).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser)
	}
	if err != nil {
		return "", fmt.Errorf("password of %q: %w", name, err)
	}
	return h, nil
}

// Users lists all user names, sorted.
func (s *Store) Users(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return names, nil
}

// Account opens one user's mail.
func (s *Store) Account(ctx context.Context, user string) (store.Account, error) {
	if err := noSuchUser(user); err != nil {
		return nil, err
	}
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE name = $1`, user).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("user %q: %w", user, store.ErrNoSuchUser)
	}
	if err != nil {
		return nil, fmt.Errorf("look up user %q: %w", user, err)
	}
	return &account{s: s, id: id, name: user}, nil
}

// Ping implements store.Pinger.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// Close sends the pending change signals, stops listening and closes
// the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopSignals()
		if s.stopListen != nil {
			s.stopListen()
			<-s.listenDone
			<-s.headsDone
		}
		if s.stopGC != nil {
			s.stopGC()
			<-s.gcDone
		}
		if s.stopIndexer != nil {
			s.stopIndexer()
			<-s.indexerDone
		}
		s.pool.Close()
		if s.replica != nil {
			s.replica.pool.Close()
		}
	})
	return nil
}

// notifyLocal tells this process's notifier about committed changes (other
// processes hear of them through NOTIFY).
func (s *Store) notifyLocal(user string, changed map[int64]uint64, list bool) {
	if s.opts.Notifier == nil {
		return
	}
	s.headsSeen.saw(user, changed, list)
	ids := make([]int64, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		s.opts.Notifier.MailboxChanged(user, id, changed[id])
	}
	if list {
		s.tellListChanged(user)
	}
}

// tellListChanged tells this process's notifier that user's mailbox list
// changed.
func (s *Store) tellListChanged(user string) {
	if n, ok := s.opts.Notifier.(store.MailboxListNotifier); ok {
		n.MailboxListChanged(user)
	}
}

// now is the time new rows get (seconds).
func now() int64 { return time.Now().Unix() }
