// Package sqldb runs SQL on SQLite databases through the engine's own
// API (github.com/ncruces/go-sqlite3), with the part of database/sql's
// shape the store uses: a pool of connections (DB), transactions (Tx),
// pinned connections (Conn), rows and results.
//
// It exists for speed. Through database/sql every call converts its
// arguments to driver values, takes and returns a pooled connection
// under locks and watches its context, and a statement used inside a
// transaction is bound to it afresh; measured on tern's own statements
// (bench/sqlitedrivers) that was more than half of the CPU SQLite work
// cost. Here every connection keeps each statement it ran prepared
// (bounded, see maxStmts), arguments are bound straight from Go values,
// and a context interrupts a statement through the engine's progress
// handler, with no goroutine per call.
//
// Errors of the engine come as *Error (its result code, and the engine's
// error inside, matched with errors.Is against sqlite3.BUSY,
// sqlite3.IOERR, …); an interrupted call returns its context's error. Row.Scan reports sql.ErrNoRows, and Tx methods after
// Commit or Rollback sql.ErrTxDone, as database/sql does.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ncruces/go-sqlite3"
)

// maxStmts bounds the statements one connection keeps prepared. tern
// builds its statements in a fixed number of shapes, so the bound is
// about memory, not about churn.
const maxStmts = 256

// DB is a pool of connections to one database file. It is safe for
// concurrent use.
type DB struct {
	name      string // file name or URI for sqlite3.OpenContext
	pragmas   string // run on every new connection
	maxMemory int64  // the engine's memory per connection, 0: its default
	immediate bool   // writable transactions BEGIN IMMEDIATE

	mu      sync.Mutex
	idle    []*conn
	maxIdle int
	open    int
	slots   chan struct{} // SetMaxOpenConns: one token per connection allowed
	closed  bool
}

// Open returns a pool for the database a data source name names, in the
// form tern has always used: "file:PATH?" followed by SQLite's own URI
// parameters (mode=rw, immutable=1, …), "_pragma=NAME(VALUE)" for each
// PRAGMA every connection runs when it opens, and "_txlock=immediate" to
// make writable transactions take the write lock at BEGIN. No connection
// is opened until one is used.
//
// A connection's engine runs in memory of its own, at most
// engineMemory; a memory map of the file (PRAGMA mmap_size) must fit
// there too, so a DSN that asks for one gets that much more room.
func Open(dsn string) (*DB, error) {
	name, query, _ := strings.Cut(dsn, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("data source %q: %w", dsn, err)
	}
	db := &DB{maxIdle: 2}
	var pragmas []string
	for _, p := range params["_pragma"] {
		pragmas = append(pragmas, "PRAGMA "+p+";")
		if size, ok := mmapSize(p); ok && size > 0 && bits.UintSize == 64 {
			db.maxMemory = engineMemory + min(size, maxMmap)
		}
	}
	db.pragmas = strings.Join(pragmas, " ")
	switch params.Get("_txlock") {
	case "", "deferred":
	case "immediate":
		db.immediate = true
	default:
		return nil, fmt.Errorf("data source %q: _txlock must be deferred or immediate", dsn)
	}
	delete(params, "_pragma")
	delete(params, "_txlock")
	if len(params) > 0 {
		name += "?" + params.Encode()
	}
	db.name = name
	return db, nil
}

// engineMemory is the most memory a connection's engine uses by default
// (github.com/ncruces/go-sqlite3: 256 MiB on 64-bit systems); maxMmap is
// the largest memory map it makes of a database file. Both are address
// space reserved when the connection opens; pages are used as touched.
const (
	engineMemory = 256 << 20
	maxMmap      = 1 << 30
)

// mmapSize reports the size a pragma of the form "mmap_size(N)" asks for.
func mmapSize(pragma string) (int64, bool) {
	arg, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(pragma)), "mmap_size(")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(arg, ")")), 10, 64)
	return n, err == nil
}

// SetMaxIdleConns sets how many unused connections the pool keeps open.
func (db *DB) SetMaxIdleConns(n int) {
	db.mu.Lock()
	db.maxIdle = n
	db.mu.Unlock()
}

// SetMaxOpenConns limits the connections open at once (0: no limit);
// callers wait for one beyond it. Call it before the pool is used.
func (db *DB) SetMaxOpenConns(n int) {
	db.slots = nil
	if n > 0 {
		db.slots = make(chan struct{}, n)
	}
}

// OpenConnections reports how many connections are open, in use or idle.
func (db *DB) OpenConnections() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.open
}

// get takes an idle connection or opens one.
func (db *DB) get(ctx context.Context) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if db.slots != nil {
		select {
		case db.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		db.freeSlot()
		return nil, errors.New("sql: database is closed")
	}
	if n := len(db.idle); n > 0 {
		c := db.idle[n-1]
		db.idle = db.idle[:n-1]
		db.mu.Unlock()
		return c, nil
	}
	db.open++
	db.mu.Unlock()
	c, err := db.dial()
	if err != nil {
		db.mu.Lock()
		db.open--
		db.mu.Unlock()
		db.freeSlot()
		return nil, err
	}
	return c, nil
}

func (db *DB) freeSlot() {
	if db.slots != nil {
		<-db.slots
	}
}

// dialBusyWait bounds how long dial retries a database that is busy.
const dialBusyWait = 10 * time.Second

// dial opens a new connection and runs the pool's pragmas on it. The
// engine's file layer locks per connection (open file description
// locks), not per process, so connections of one process meet as
// SQLite's connections of different processes do: a connection opening
// the file while others close it (the last one checkpoints and removes
// the write-ahead log and its index) can find it locked on its first
// read, with SQLITE_BUSY and without waiting in the busy handler. Seen
// when sessions logged in while idle users' databases closed
// (TestAccountChurn); dial then tries again, for up to dialBusyWait.
func (db *DB) dial() (*conn, error) {
	deadline := time.Now().Add(dialBusyWait)
	for {
		c, err := db.dialOnce()
		if err == nil || !errors.Is(err, sqlite3.BUSY) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(time.Millisecond)
	}
}

func (db *DB) dialOnce() (*conn, error) {
	ctx := context.Background()
	open := ctx
	if db.maxMemory > 0 {
		open = sqlite3.WithMaxMemory(ctx, db.maxMemory)
	}
	sc, err := sqlite3.OpenContext(open, db.name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", db.name, db.fail(ctx, err))
	}
	if db.pragmas != "" {
		if err := sc.Exec(db.pragmas); err != nil {
			sc.Close()
			return nil, fmt.Errorf("open %s: %w", db.name, db.fail(ctx, err))
		}
	}
	return &conn{db: db, sc: sc, stmts: make(map[string]*stmt)}, nil
}

// put returns a connection to the pool, closing it when the pool has
// enough idle ones or is closed. A connection left inside a transaction
// (a failed COMMIT or ROLLBACK) is closed, which rolls it back.
func (db *DB) put(c *conn) {
	c.closeRows()
	c.sc.SetInterrupt(context.Background())
	db.mu.Lock()
	keep := !db.closed && len(db.idle) < db.maxIdle && c.sc.GetAutocommit() && !c.broken
	if keep {
		db.idle = append(db.idle, c)
	} else {
		db.open--
	}
	db.mu.Unlock()
	if !keep {
		c.close()
	}
	db.freeSlot()
}

// TrimIdle closes the idle connections beyond the n used last (the
// connections in use are not touched), and reports how many it closed.
func (db *DB) TrimIdle(n int) int {
	db.mu.Lock()
	var extra []*conn
	if k := len(db.idle) - max(n, 0); k > 0 {
		extra = slices.Clone(db.idle[:k]) // get takes from the end: these were used first
		db.idle = slices.Delete(db.idle, 0, k)
		db.open -= k
	}
	db.mu.Unlock()
	for _, c := range extra {
		c.close()
	}
	return len(extra)
}

// Close closes the idle connections; connections in use close when they
// are given back.
func (db *DB) Close() error {
	db.mu.Lock()
	idle := db.idle
	db.idle = nil
	db.closed = true
	db.open -= len(idle)
	db.mu.Unlock()
	var errs []error
	for _, c := range idle {
		errs = append(errs, c.close())
	}
	return errors.Join(errs...)
}

// ExecContext runs a statement (or several, separated by semicolons; the
// arguments are taken in order) on a pooled connection.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c, err := db.get(ctx)
	if err != nil {
		return nil, err
	}
	defer db.put(c)
	return c.exec(ctx, query, args)
}

// QueryContext runs a query on a pooled connection, which the rows hold
// until they are closed.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*Rows, error) {
	c, err := db.get(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.query(ctx, query, args)
	if err != nil {
		db.put(c)
		return nil, err
	}
	rows.release = func() { db.put(c) }
	return rows, nil
}

// QueryRowContext runs a query expected to return at most one row.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	rows, err := db.QueryContext(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// BeginTx starts a transaction on a connection of its own. A writable one
// begins IMMEDIATE when the pool says so (_txlock=immediate); a read-only
// one always DEFERRED, reading one snapshot.
func (db *DB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	c, err := db.get(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.begin(ctx, opts, func() { db.put(c) })
	if err != nil {
		db.put(c)
		return nil, err
	}
	return tx, nil
}

// Conn pins one connection of the pool until its Close.
func (db *DB) Conn(ctx context.Context) (*Conn, error) {
	c, err := db.get(ctx)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c}, nil
}

// Conn is one connection taken from a DB. Not safe for concurrent use.
type Conn struct {
	c      *conn
	tx     *Tx // the last transaction begun on it
	closed bool
}

func (cn *Conn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if cn.closed {
		return nil, sql.ErrConnDone
	}
	return cn.c.exec(ctx, query, args)
}

func (cn *Conn) QueryContext(ctx context.Context, query string, args ...any) (*Rows, error) {
	if cn.closed {
		return nil, sql.ErrConnDone
	}
	return cn.c.query(ctx, query, args)
}

func (cn *Conn) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	rows, err := cn.QueryContext(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// BeginTx starts a transaction on this connection.
func (cn *Conn) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	if cn.closed {
		return nil, sql.ErrConnDone
	}
	tx, err := cn.c.begin(ctx, opts, nil)
	if err == nil {
		cn.tx = tx
	}
	return tx, err
}

// Raw is the engine's connection, for what this package does not wrap;
// nil once the Conn is closed.
func (cn *Conn) Raw() *sqlite3.Conn {
	if cn.closed {
		return nil
	}
	return cn.c.sc
}

// Close gives the connection back to its pool, rolling back a
// transaction left open on it.
func (cn *Conn) Close() error {
	if cn.closed {
		return nil
	}
	var err error
	if cn.tx != nil && !cn.tx.done {
		err = cn.tx.Rollback()
	}
	cn.closed = true
	cn.c.db.put(cn.c)
	return err
}

// Tx is a transaction on one connection. Statements of one Tx must not
// run concurrently.
type Tx struct {
	c    *conn
	done bool
	end  func() // gives the connection back; nil for a Conn's transaction
}

func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if tx.done {
		return nil, sql.ErrTxDone
	}
	return tx.c.exec(ctx, query, args)
}

func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*Rows, error) {
	if tx.done {
		return nil, sql.ErrTxDone
	}
	return tx.c.query(ctx, query, args)
}

func (tx *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	rows, err := tx.QueryContext(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// Commit commits the transaction. Rows still open are closed first. When
// COMMIT fails the transaction is rolled back if SQLite left it open.
func (tx *Tx) Commit() error {
	if tx.done {
		return sql.ErrTxDone
	}
	tx.done = true
	c := tx.c
	c.closeRows()
	_, err := c.exec(context.Background(), "COMMIT", nil)
	if err != nil && !c.sc.GetAutocommit() {
		c.exec(context.Background(), "ROLLBACK", nil)
	}
	tx.finish()
	return err
}

// Rollback undoes the transaction; after Commit or Rollback it returns
// sql.ErrTxDone.
func (tx *Tx) Rollback() error {
	if tx.done {
		return sql.ErrTxDone
	}
	tx.done = true
	c := tx.c
	c.closeRows()
	var err error
	if !c.sc.GetAutocommit() { // SQLite may have rolled back already (SQLITE_FULL, …)
		_, err = c.exec(context.Background(), "ROLLBACK", nil)
	}
	tx.finish()
	return err
}

func (tx *Tx) finish() {
	if tx.end != nil {
		tx.end()
	}
}

// Raw is the engine's connection, for what this package does not wrap;
// nil once the transaction has ended.
func (tx *Tx) Raw() *sqlite3.Conn {
	if tx.done {
		return nil
	}
	return tx.c.sc
}

// conn is one SQLite connection with its prepared statements.
type conn struct {
	db     *DB
	sc     *sqlite3.Conn
	stmts  map[string]*stmt
	rows   map[*Rows]struct{} // open rows, closed at a transaction's end
	broken bool               // an I/O error happened: closed, not pooled, when given back
}

// fail is db.fail for a call on c; an I/O error marks c broken, so that
// the pool closes it instead of handing it out again (its files may be
// failed for good: walvfs).
func (c *conn) fail(ctx context.Context, err error) error {
	err = c.db.fail(ctx, err)
	if errors.Is(err, sqlite3.IOERR) {
		c.broken = true
	}
	return err
}

// stmt is a prepared statement; busy while rows read from it.
type stmt struct {
	s      *sqlite3.Stmt
	query  string
	busy   bool
	cached bool
	big    bool // a bound value is large: cleared after use (done)
}

func (c *conn) close() error {
	for _, s := range c.stmts {
		s.s.Close()
	}
	c.stmts = nil
	return c.sc.Close()
}

// closeRows closes the rows still open on the connection.
func (c *conn) closeRows() {
	for r := range c.rows {
		r.Close()
	}
}

func (c *conn) begin(ctx context.Context, opts *sql.TxOptions, end func()) (*Tx, error) {
	q := "BEGIN"
	if c.db.immediate && (opts == nil || !opts.ReadOnly) {
		q = "BEGIN IMMEDIATE"
	}
	if _, err := c.exec(ctx, q, nil); err != nil {
		return nil, err
	}
	return &Tx{c: c, end: end}, nil
}

// prepare returns the statement for query: the cached one, or a new one
// (cached unless the cached one is busy, which happens when a query runs
// inside the loop over its own rows). tail is the text after the first
// statement, for scripts.
func (c *conn) prepare(query string) (s *stmt, tail string, err error) {
	if s, ok := c.stmts[query]; ok && !s.busy {
		return s, "", nil
	}
	ss, tail, err := c.sc.PrepareFlags(query, sqlite3.PREPARE_PERSISTENT)
	if err != nil {
		return nil, "", err
	}
	if ss == nil { // only a comment or white space
		return nil, tail, nil
	}
	s = &stmt{s: ss, query: query}
	if _, taken := c.stmts[query]; !taken && strings.TrimSpace(tail) == "" {
		c.evict()
		s.cached = true
		c.stmts[query] = s
	}
	return s, tail, nil
}

// evict makes room for one more statement in the cache.
func (c *conn) evict() {
	if len(c.stmts) < maxStmts {
		return
	}
	for q, s := range c.stmts { // map order: an arbitrary victim
		if !s.busy {
			delete(c.stmts, q)
			s.s.Close()
			return
		}
	}
}

// done resets a statement after use, closing it if it is not cached.
// Bindings stay (clearing them made SQLite prepare again statements whose
// plan depends on a bound value, TestStatementsNotReprepared), except
// large ones, which would otherwise stay in the connection's memory.
func (c *conn) done(s *stmt) {
	s.busy = false
	if !s.cached {
		s.s.Close()
		return
	}
	s.s.Reset()
	if s.big {
		s.s.ClearBindings()
		s.big = false
	}
}

// interrupt ties the connection to ctx; an error if ctx is done already.
func (c *conn) interrupt(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.sc.GetInterrupt() != ctx {
		c.sc.SetInterrupt(ctx)
	}
	return nil
}

// Error is an error of the SQLite engine. Code is its extended result
// code (SQLITE_IOERR_WRITE, …; the primary code is Code()&0xff), as
// database/sql's SQLite drivers report it; Unwrap gives the engine's
// error, which errors.Is matches against sqlite3.BUSY, sqlite3.IOERR, ….
type Error struct {
	err  error
	code int
}

func (e *Error) Error() string { return e.err.Error() }
func (e *Error) Unwrap() error { return e.err }
func (e *Error) Code() int     { return e.code }

// fullDiskReserve: an I/O error while less than this is free on the
// database's file system is taken for a full disk.
const fullDiskReserve = 1 << 20

// fail turns an error of the engine into what callers see: the context's
// error for a statement that ctx interrupted, else an *Error. A full
// disk also matches syscall.ENOSPC: the engine's file layer
// (ncruces/go-sqlite3 v0.37) reports a write that failed with ENOSPC as
// SQLITE_IOERR_WRITE, without the operating system's error, rather than
// SQLITE_FULL (its check for ENOSPC misses the *fs.PathError that
// os.File.WriteAt returns), so an I/O error while the file system has
// almost no space left is taken for one.
func (db *DB) fail(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	// A done context stops a statement (INTERRUPT) or a wait for a lock
	// in the busy handler (BUSY).
	if ctx.Err() != nil && (errors.Is(err, sqlite3.INTERRUPT) || errors.Is(err, sqlite3.BUSY)) {
		return ctx.Err()
	}
	var code sqlite3.ExtendedErrorCode
	if !errors.As(err, &code) {
		return err
	}
	if code.Code() == sqlite3.IOERR && !errors.Is(err, syscall.ENOSPC) {
		if free, ok := DiskFree(db.dir()); ok && free < fullDiskReserve {
			err = fmt.Errorf("%w: %w", err, syscall.ENOSPC)
		}
	}
	return &Error{err: err, code: int(code)}
}

// dir is the directory of the database file.
func (db *DB) dir() string {
	path, _, _ := strings.Cut(strings.TrimPrefix(db.name, "file:"), "?")
	return filepath.Dir(path)
}

// exec runs query (a script of several statements when it has them) with
// args taken in order.
func (c *conn) exec(ctx context.Context, query string, args []any) (sql.Result, error) {
	if err := c.interrupt(ctx); err != nil {
		return nil, err
	}
	var res result
	for rest := query; ; {
		s, tail, err := c.prepare(rest)
		if err != nil {
			return nil, c.fail(ctx, err)
		}
		if s != nil {
			n := s.s.BindCount()
			if n > len(args) {
				c.done(s)
				return nil, fmt.Errorf("sql: expected %d arguments, got %d", n, len(args))
			}
			if err := s.bind(args[:n]); err != nil {
				c.done(s)
				return nil, err
			}
			args = args[n:]
			err = s.s.Exec()
			c.done(s)
			if err != nil {
				return nil, c.fail(ctx, err)
			}
			res = result{lastID: c.sc.LastInsertRowID(), rows: c.sc.Changes()}
		}
		if strings.TrimSpace(tail) == "" {
			break
		}
		rest = tail
	}
	if len(args) > 0 {
		return nil, fmt.Errorf("sql: %d arguments left over", len(args))
	}
	return res, nil
}

// query starts a query; the rows hold its statement until closed.
func (c *conn) query(ctx context.Context, query string, args []any) (*Rows, error) {
	if err := c.interrupt(ctx); err != nil {
		return nil, err
	}
	s, tail, err := c.prepare(query)
	if err != nil {
		return nil, c.fail(ctx, err)
	}
	if s == nil || strings.TrimSpace(tail) != "" {
		if s != nil {
			c.done(s)
		}
		return nil, fmt.Errorf("sql: query must be one statement: %q", query)
	}
	if n := s.s.BindCount(); n != len(args) {
		c.done(s)
		return nil, fmt.Errorf("sql: expected %d arguments, got %d", n, len(args))
	}
	if err := s.bind(args); err != nil {
		c.done(s)
		return nil, err
	}
	s.busy = true
	r := &Rows{c: c, s: s, ctx: ctx}
	if c.rows == nil {
		c.rows = make(map[*Rows]struct{})
	}
	c.rows[r] = struct{}{}
	return r, nil
}

// result is an Exec's sql.Result.
type result struct{ lastID, rows int64 }

func (r result) LastInsertId() (int64, error) { return r.lastID, nil }
func (r result) RowsAffected() (int64, error) { return r.rows, nil }

// Rows is a query's result, read with Next and Scan. Close it (or read it
// to the end) to free its statement.
type Rows struct {
	c       *conn
	s       *stmt
	ctx     context.Context
	err     error
	closed  bool
	release func() // gives a DB query's connection back
}

// Next steps to the next row; false at the end or on an error (Err).
func (r *Rows) Next() bool {
	if r.closed {
		return false
	}
	if r.c.sc.GetInterrupt() != r.ctx {
		r.c.sc.SetInterrupt(r.ctx)
	}
	if r.s.s.Step() {
		return true
	}
	r.err = r.c.fail(r.ctx, r.s.s.Err())
	r.Close()
	return false
}

// Err is the error that ended Next, if any.
func (r *Rows) Err() error { return r.err }

// Close frees the statement; it is safe to call more than once.
func (r *Rows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	delete(r.c.rows, r)
	r.c.done(r.s)
	if r.release != nil {
		r.release()
	}
	return nil
}

// Scan copies the current row's columns into dest (see scanColumn for the
// types it takes).
func (r *Rows) Scan(dest ...any) error {
	if r.closed {
		return errors.New("sql: Rows are closed")
	}
	if len(dest) != r.s.s.ColumnCount() {
		return fmt.Errorf("sql: expected %d destination arguments in Scan, not %d", r.s.s.ColumnCount(), len(dest))
	}
	for i, d := range dest {
		if err := scanColumn(r.s.s, i, d); err != nil {
			return fmt.Errorf("sql: Scan error on column index %d, name %q: %w", i, r.s.s.ColumnName(i), err)
		}
	}
	return nil
}

// Row is the result of QueryRowContext.
type Row struct {
	rows *Rows
	err  error
}

// Scan copies the row's columns into dest; sql.ErrNoRows when there is
// none.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	for _, d := range dest {
		if _, raw := d.(*sql.RawBytes); raw {
			r.rows.Close()
			return errors.New("sql: RawBytes isn't allowed on Row.Scan") // its bytes end with the row
		}
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	return r.rows.Scan(dest...)
}

// Err is the error of running the query, if any.
func (r *Row) Err() error { return r.err }

// Exec, Query, QueryRow and Begin are the calls above without a context.

func (db *DB) Exec(query string, args ...any) (sql.Result, error) {
	return db.ExecContext(context.Background(), query, args...)
}

func (db *DB) Query(query string, args ...any) (*Rows, error) {
	return db.QueryContext(context.Background(), query, args...)
}

func (db *DB) QueryRow(query string, args ...any) *Row {
	return db.QueryRowContext(context.Background(), query, args...)
}

func (db *DB) Begin() (*Tx, error) { return db.BeginTx(context.Background(), nil) }

func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	return tx.ExecContext(context.Background(), query, args...)
}

func (tx *Tx) Query(query string, args ...any) (*Rows, error) {
	return tx.QueryContext(context.Background(), query, args...)
}

func (tx *Tx) QueryRow(query string, args ...any) *Row {
	return tx.QueryRowContext(context.Background(), query, args...)
}

// Reprepares reports how many times SQLite prepared again the statements
// the idle connections keep: after a schema change, or when a plan
// depended on a bound value that changed since the last run. Each costs a
// parse, so everyday statements should not cause them.
func (db *DB) Reprepares() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	n := 0
	for _, c := range db.idle {
		for _, s := range c.stmts {
			n += s.s.Status(sqlite3.STMTSTATUS_REPREPARE, false)
		}
	}
	return n
}
