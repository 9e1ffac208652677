package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tern-imap/tern/internal/store"
)

// lockConn is a write transaction's connection whose BEGIN and user row
// lock have not been sent yet: they go in front of the first statement
// the write sends, in the same round trip when that is a batch (as the
// first reads of STORE, EXPUNGE, COPY, MOVE and APPEND are), else in a round trip of their own just before it. Every
// statement of the write still runs inside the transaction and after the
// lock.
type lockConn struct {
	*pgx.Conn
	user    int64
	name    string
	pending bool  // BEGIN and the lock are still to be sent
	generic bool  // the lock sets generic plans (lockUserGenericSQL)
	relaxed bool  // the lock makes the commit relaxed (lockUserRelaxedSQL)
	err     error // why BEGIN or the lock failed
}

var _ dbtx = (*lockConn)(nil)

// queueBegin adds BEGIN and the row lock to b.
func (c *lockConn) queueBegin(b *pgx.Batch) {
	b.Queue(`BEGIN`)
	b.Queue(lockSQL(c.generic, c.relaxed), c.user)
}

// lockSQL is the statement that takes the user's row lock, setting for
// the transaction generic plans and a relaxed commit as asked.
func lockSQL(generic, relaxed bool) string {
	switch {
	case generic && relaxed:
		return lockUserGenericRelaxedSQL
	case generic:
		return lockUserGenericSQL
	case relaxed:
		return lockUserRelaxedSQL
	}
	return lockUserSQL
}

// readBegin reads the results of queueBegin's statements from br and
// records a failure in c.err.
func (c *lockConn) readBegin(br pgx.BatchResults) error {
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(nil)
		if errors.Is(err, pgx.ErrNoRows) {
			err = fmt.Errorf("user %q: %w", c.name, store.ErrNoSuchUser)
		}
	}
	if err != nil {
		c.err = fmt.Errorf("lock user: %w", err)
	}
	return c.err
}

// begin sends BEGIN and the lock now, if they are still pending.
func (c *lockConn) begin(ctx context.Context) error {
	if !c.pending {
		return c.err
	}
	c.pending = false
	b := &pgx.Batch{}
	c.queueBegin(b)
	br := c.Conn.SendBatch(ctx, b)
	err := c.readBegin(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		c.err = fmt.Errorf("lock user: %w", cerr)
	}
	return c.err
}

func (c *lockConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := c.begin(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return c.Conn.Exec(ctx, sql, args...)
}

// Query after a failed BEGIN or lock still runs (and fails: the
// transaction is aborted or absent); the write's error is c.err.
func (c *lockConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.begin(ctx)
	return c.Conn.Query(ctx, sql, args...)
}

func (c *lockConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := c.begin(ctx); err != nil {
		return errRow{err}
	}
	return c.Conn.QueryRow(ctx, sql, args...)
}

// SendBatch sends BEGIN and the lock in front of b when they are pending,
// and reads their results before handing the batch's results over, so the
// caller reads its own statements' results as usual.
func (c *lockConn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if !c.pending {
		return c.Conn.SendBatch(ctx, b)
	}
	c.pending = false
	all := &pgx.Batch{}
	c.queueBegin(all)
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	br := c.Conn.SendBatch(ctx, all)
	// A failure is in c.err; the caller's statements then fail or find
	// nothing, and the transaction is rolled back with c.err.
	c.readBegin(br)
	return br
}

// errRow is a pgx.Row that fails.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
