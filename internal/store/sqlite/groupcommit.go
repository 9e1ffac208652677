package sqlite

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/ncruces/go-sqlite3"
)

// Group commit: writes of one user are serialized, and each commit waits
// for an fsync of the WAL. Writes that arrive while a commit is in progress
// queue up, and the next commit takes all of them (up to maxGroupCommit):
// one transaction, each write inside its own savepoint, one commit. A
// write that fails is rolled back to its savepoint alone; the others
// commit. Every write still returns only after the commit that holds it
// succeeded, so a nil return means durable, and the writes take effect in
// the order they were queued in, each seeing the ones before it, exactly
// as if they had committed one by one.
//
// One goroutine at a time leads: it runs one batch, which holds its own
// write (under userDB.wmu), then hands the lead to the oldest waiting
// write before it syncs the log (see commit), so no write waits for more
// than the batch before its own and its own.

// commitError is an error returned by COMMIT itself. Every other error of
// a write means its transaction (or savepoint) was rolled back; after a
// failed COMMIT the outcome is not known for certain, and a caller that
// would undo side effects (Append's body files) must look first.
type commitError struct{ err error }

func (e *commitError) Error() string { return e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// commitMayReplay reports whether a failed COMMIT may have left its
// transaction complete in the write-ahead log, where no reader sees it now
// but recovery after a crash would: an I/O error while writing or syncing
// the log (SQLITE_IOERR_*). A full disk (SQLITE_FULL, or a write that
// failed with ENOSPC, which the engine reports as SQLITE_IOERR_WRITE:
// sqldb.DB.fail) or a lock fails before the commit record is
// complete, and a torn last frame fails its checksum at recovery.
func commitMayReplay(err error) bool {
	return errors.Is(err, sqlite3.IOERR) && !errors.Is(err, syscall.ENOSPC)
}

// commitTx commits tx; an error is a *commitError.
func (u *userDB) commitTx(tx *sqlTx) error {
	commit := tx.Commit
	if u.testCommit != nil {
		commit = func() error { return u.testCommit(tx) }
	}
	if err := commit(); err != nil {
		return &commitError{err}
	}
	return nil
}

// maxGroupCommit bounds how many writes share one transaction.
const maxGroupCommit = 64

// writeOp is one write waiting for (or done with) its commit.
type writeOp struct {
	w    *wtx
	fn   func(*wtx) error
	err  error
	done bool          // err is final; set before wake is closed
	wake chan struct{} // closed when done, or to hand this write the lead
}

// commit runs fn in a write transaction, possibly shared with other
// writes, and returns once that transaction has committed (nil) or fn or
// the transaction failed.
//
// A batch that must be made durable (syncAfterCommit) is synced after the
// write lock is released and the lead handed on: the next batch commits
// while this one's fsync runs, so a STORE queued behind an APPEND waits
// for the APPEND's commit, not for its fsync as well. No write of the
// batch returns before the sync, so durability is unchanged; a reader or
// a later batch may see the batch's rows before they are on disk, as
// readers always could (SQLite makes a commit visible before this sync).
func (u *userDB) commit(w *wtx, fn func(*wtx) error) error {
	op := &writeOp{w: w, fn: fn, wake: make(chan struct{})}
	u.wqMu.Lock()
	u.wq = append(u.wq, op)
	lead := !u.leading
	u.leading = true
	u.wqMu.Unlock()
	if !lead {
		<-op.wake
		if op.done {
			return op.err
		}
		// The lead was handed to this write.
	}
	// This write is the oldest waiting one, so the batch taken holds it.
	u.wmu.Lock()
	u.wqMu.Lock()
	n := min(len(u.wq), maxGroupCommit)
	batch := u.wq[:n:n]
	u.wq = append([]*writeOp(nil), u.wq[n:]...)
	u.wqMu.Unlock()
	release, err := u.beginWriters()
	if err == nil {
		err = u.runBatch(batch)
		if err == nil {
			u.afterCommit()
		}
		release()
	}
	u.wmu.Unlock()
	u.handOnLead()
	if err == nil && u.syncAfterCommit(batch) {
		if serr := u.syncLog(); serr != nil {
			err = &commitError{serr}
		}
	}
	for _, o := range batch {
		if o.err == nil {
			o.err = err
		}
		o.done = true
		if o != op {
			close(o.wake)
		}
	}
	return op.err
}

// beginWriters arbitrates a batch with other processes' writers of the
// user (writerlock.go): the server waits while one announces a write,
// another process announces its own. The returned release ends it.
func (u *userDB) beginWriters() (func(), error) {
	if u.server {
		return func() {}, u.writers.yield()
	}
	return u.writers.hold()
}

// handOnLead wakes the oldest waiting write to run the next batch, or
// gives up the lead when none waits.
func (u *userDB) handOnLead() {
	u.wqMu.Lock()
	if len(u.wq) == 0 {
		u.leading = false
		u.wqMu.Unlock()
		return
	}
	next := u.wq[0]
	u.wqMu.Unlock()
	close(next.wake)
}

// runBatch runs ops (at least one) in one transaction and commits it. An
// op that fails gets its error in op.err and its changes undone; an error
// returned is the transaction's and fails every op of the batch.
func (u *userDB) runBatch(ops []*writeOp) error {
	// The transaction outlives any one write's context (each write's own
	// statements still run with its own).
	ctx := context.WithoutCancel(ops[0].w.ctx)
	u.commits.Add(1)
	tx, err := beginTx(ctx, u.db, nil)
	if err != nil {
		return err
	}
	if len(ops) == 1 {
		// Alone: no savepoint needed, a failure rolls everything back.
		op := ops[0]
		op.w.tx = tx
		if op.err = op.fn(op.w); op.err != nil {
			tx.Rollback()
			return nil
		}
		if op.w.gc {
			if err := op.w.collectGarbage(); err != nil {
				tx.Rollback()
				return err
			}
		}
		return u.commitTx(tx)
	}
	tx.shared = true
	var first *writeOp // first op that succeeded
	gc := false
	for _, op := range ops {
		op.w.tx = tx
		if op.err = op.w.ctx.Err(); op.err != nil {
			continue // given up on while it waited
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT write`); err != nil {
			tx.Rollback()
			return err
		}
		if op.err = op.fn(op.w); op.err != nil {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO write`); err != nil {
				// SQLite may have rolled back the whole transaction (an
				// interrupted statement, a full disk): then nothing of this
				// batch can commit.
				tx.Rollback()
				return fmt.Errorf("undo failed write of a group commit: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE write`); err != nil {
			tx.Rollback()
			return err
		}
		if op.err == nil {
			if first == nil {
				first = op
			}
			gc = gc || op.w.gc
		}
	}
	if first == nil {
		tx.Rollback()
		return nil
	}
	if gc {
		g := &wtx{ctx: ctx, tx: tx}
		if err := g.collectGarbage(); err != nil {
			tx.Rollback()
			return err
		}
		first.w.dead = append(first.w.dead, g.dead...)
	}
	return u.commitTx(tx)
}

// syncAfterCommit reports whether the commit of ops must be followed by
// an fsync of the log (syncLog). Under FsyncOptimized the connections'
// commits write the log without syncing it (walvfs, dsnCommits), so a
// batch with a write that is not lazy (wtx.lazy: new mail, mailbox
// changes) syncs the log itself before any of its writes returns; under
// FsyncAlways every commit syncs the log inside SQLite. Choosing per
// batch through SQLite (PRAGMA synchronous) instead cost a statement and
// a dedicated connection per transaction: a tenth of a STORE's CPU.
func (u *userDB) syncAfterCommit(ops []*writeOp) bool {
	if u.fsync != FsyncOptimized {
		return false
	}
	for _, op := range ops {
		if !op.w.lazy && op.err == nil {
			return true
		}
	}
	return false
}
