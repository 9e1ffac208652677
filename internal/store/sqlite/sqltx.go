package sqlite

import (
	"context"
	"database/sql"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// sqlTx is a write (or read-only) transaction of a user's mail.db. Every
// connection of a sqldb.DB keeps the statements it ran prepared, so a
// loop inside a transaction runs one prepared statement many times.
type sqlTx struct {
	tx *sqldb.Tx
	// shared: the transaction holds several writers' writes (group
	// commit). Their statements run without cancellation, as one writer's
	// cancelled context must not interrupt a statement (SQLite then rolls
	// back the whole transaction); a write given up on before it starts
	// is skipped.
	shared bool
}

// detach strips cancellation from ctx in a shared transaction.
func (t *sqlTx) detach(ctx context.Context) context.Context {
	if t.shared {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// beginTx starts a transaction on db.
func beginTx(ctx context.Context, db *sqldb.DB, opts *sql.TxOptions) (*sqlTx, error) {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &sqlTx{tx: tx}, nil
}

func (t *sqlTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.detach(ctx), query, args...)
}

func (t *sqlTx) QueryContext(ctx context.Context, query string, args ...any) (*sqldb.Rows, error) {
	return t.tx.QueryContext(t.detach(ctx), query, args...)
}

func (t *sqlTx) QueryRowContext(ctx context.Context, query string, args ...any) *sqldb.Row {
	return t.tx.QueryRowContext(t.detach(ctx), query, args...)
}

func (t *sqlTx) Commit() error { return t.tx.Commit() }

func (t *sqlTx) Rollback() error { return t.tx.Rollback() }
