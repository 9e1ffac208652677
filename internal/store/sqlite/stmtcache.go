package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache runs queries through prepared statements kept per query text,
// so SQLite parses each statement once per database connection rather than
// on every call. database/sql prepares a cached *sql.Stmt on each pooled
// connection the first time it runs there, and Tx.StmtContext reuses the
// connection's prepared statement inside a transaction (see sqlTx).
//
// The cache is bounded: beyond maxCachedStmts the least recently used
// statement is closed (once no call is using it). Statements are built in
// a fixed number of shapes (see uidMatch, uidIn), so the bound is about
// memory, not about keeping varying query texts out.
type stmtCache struct {
	db  *sql.DB
	max int

	mu     sync.Mutex
	stmts  map[string]*cachedStmt
	lru    cachedStmt // sentinel of the recency ring: lru.next is the most recent
	closed bool
}

// cachedStmt is one entry of a stmtCache.
type cachedStmt struct {
	query      string
	stmt       *sql.Stmt
	prev, next *cachedStmt
	users      int  // calls in flight
	evicted    bool // out of the cache; close when users drops to 0
}

// maxCachedStmts bounds the statements a stmtCache keeps prepared.
const maxCachedStmts = 256

func newStmtCache(db *sql.DB) *stmtCache {
	c := &stmtCache{db: db, max: maxCachedStmts, stmts: make(map[string]*cachedStmt)}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

func (c *stmtCache) unlink(e *cachedStmt) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *stmtCache) pushFront(e *cachedStmt) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

// acquire returns the entry for query, preparing it if needed, with one
// more user; nil if the cache is closed or the statement does not prepare
// (the caller then runs the query unprepared, which reports the error).
// Release the entry with release.
func (c *stmtCache) acquire(ctx context.Context, query string) *cachedStmt {
	var evicted []*sql.Stmt
	defer func() {
		// Closing waits for the connections' locks: not under c.mu.
		for _, s := range evicted {
			s.Close()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if e, ok := c.stmts[query]; ok {
		if c.lru.next != e {
			c.unlink(e)
			c.pushFront(e)
		}
		e.users++
		return e
	}
	s, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	e := &cachedStmt{query: query, stmt: s, users: 1}
	c.stmts[query] = e
	c.pushFront(e)
	for len(c.stmts) > c.max {
		old := c.lru.prev
		c.unlink(old)
		delete(c.stmts, old.query)
		old.evicted = true
		if old.users == 0 {
			evicted = append(evicted, old.stmt)
		}
	}
	return e
}

func (c *stmtCache) release(e *cachedStmt) {
	c.mu.Lock()
	e.users--
	done := e.evicted && e.users == 0
	c.mu.Unlock()
	if done {
		e.stmt.Close()
	}
}

// len reports how many statements are cached.
func (c *stmtCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.stmts)
}

// QueryContext, QueryRowContext and ExecContext run on the database (not in
// a transaction). The statement may be evicted and closed once the call
// returns: database/sql keeps it alive for the returned rows.

func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if e := c.acquire(ctx, query); e != nil {
		defer c.release(e)
		return e.stmt.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if e := c.acquire(ctx, query); e != nil {
		defer c.release(e)
		return e.stmt.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if e := c.acquire(ctx, query); e != nil {
		defer c.release(e)
		return e.stmt.ExecContext(ctx, args...)
	}
	return c.db.ExecContext(ctx, query, args...)
}

// Close closes the prepared statements (before the database is closed).
// Later calls run unprepared.
func (c *stmtCache) Close() {
	var idle []*sql.Stmt
	c.mu.Lock()
	c.closed = true
	for q, e := range c.stmts {
		c.unlink(e)
		delete(c.stmts, q)
		e.evicted = true
		if e.users == 0 {
			idle = append(idle, e.stmt)
		}
	}
	c.mu.Unlock()
	for _, s := range idle {
		s.Close()
	}
}

// sqlTx is a transaction whose statements go through the statement cache:
// each query text is bound to the transaction (Tx.StmtContext, which reuses
// the statement already prepared on the transaction's connection) once per
// transaction, so a loop runs one prepared statement many times.
type sqlTx struct {
	tx    *sql.Tx
	c     *stmtCache
	stmts map[string]*sql.Stmt
	// shared: the transaction holds several writers' writes (group
	// commit). Their statements run without cancellation, as one writer's
	// cancelled context must neither poison a cached statement the others
	// use nor interrupt a statement (SQLite then rolls back the whole
	// transaction); a write given up on before it starts is skipped.
	shared bool
}

// detach strips cancellation from ctx in a shared transaction.
func (t *sqlTx) detach(ctx context.Context) context.Context {
	if t.shared {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (c *stmtCache) begin(ctx context.Context, opts *sql.TxOptions) (*sqlTx, error) {
	tx, err := c.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &sqlTx{tx: tx, c: c}, nil
}

// stmt returns query as a statement of this transaction, nil if it cannot
// be prepared (then the caller runs it unprepared).
func (t *sqlTx) stmt(ctx context.Context, query string) *sql.Stmt {
	ctx = t.detach(ctx)
	if s, ok := t.stmts[query]; ok {
		return s
	}
	e := t.c.acquire(ctx, query)
	if e == nil {
		return nil
	}
	// The transaction's statement depends on e.stmt inside database/sql,
	// which keeps the connection's statement alive until the transaction
	// ends even if the cache evicts e meanwhile.
	s := t.tx.StmtContext(ctx, e.stmt)
	t.c.release(e)
	if t.stmts == nil {
		t.stmts = make(map[string]*sql.Stmt)
	}
	t.stmts[query] = s
	return s
}

func (t *sqlTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = t.detach(ctx)
	if s := t.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *sqlTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = t.detach(ctx)
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *sqlTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = t.detach(ctx)
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t *sqlTx) Commit() error { return t.tx.Commit() }

func (t *sqlTx) Rollback() error { return t.tx.Rollback() }
