package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Group commit. The writes of one user are serialized by the lock on the
// user's row, so each would wait for the one before it to commit, fsync
// included. Within one process, writes of a user that arrive while
// another is under way queue up instead, and the next transaction takes
// all of them (up to maxGroupCommit): one row lock, each write in its own
// savepoint (a failing one is undone alone), one commit and one NOTIFY.
// Every write still returns only after the transaction holding it
// committed, so nil still means durable, and they take effect in queue
// order, each seeing the ones before it. Writes through other nodes still
// meet at the row lock. This is the sqlite backend's group commit
// (sqlite/groupcommit.go) on PostgreSQL.
//
// The statements of a shared transaction run with the transaction's own
// context, not their caller's: pgx breaks the connection when a context
// ends mid-statement, which would fail every write of the group. A write
// whose caller gave up before its turn is skipped.

// maxGroupCommit bounds how many writes share one transaction.
const maxGroupCommit = 64

// writeQueue is one user's writes waiting for a transaction.
type writeQueue struct {
	mu      sync.Mutex
	ops     []*writeOp
	leading bool // a goroutine is running transactions for the queue
}

// writeOp is one write waiting for (or done with) its commit.
type writeOp struct {
	ctx   context.Context // the caller's
	what  string
	flags writeFlags // what it lets its transaction do
	// breaks is Store.breaks when the write was queued: a write that
	// committed across a break teaches the keyword cache nothing.
	breaks uint64
	fn     func(*wtx) error
	w      *wtx // this write's part of the transaction that ran it
	err    error
	done   bool          // err is final; set before wake is closed
	wake   chan struct{} // closed when done, or to hand this write the lead
}

// queue returns user's write queue.
func (s *Store) queue(user int64) *writeQueue {
	s.queuesMu.Lock()
	defer s.queuesMu.Unlock()
	q := s.queues[user]
	if q == nil {
		q = &writeQueue{}
		s.queues[user] = q
	}
	return q
}

// forgetQueue drops user's queue from the map once it is idle, so the map
// holds only users writing now, not every user ever written. A writer
// that took q from the map just before may still use it, while the next
// one makes a new queue: two leaders for one user then, which costs a
// missed batching, not correctness, as every transaction first locks the
// user's row.
func (s *Store) forgetQueue(user int64, q *writeQueue) {
	s.queuesMu.Lock()
	defer s.queuesMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.queues[user] == q && !q.leading && len(q.ops) == 0 {
		delete(s.queues, user)
	}
}

// write runs fn in a transaction that holds the lock on the user's row,
// possibly shared with other writes of the user (see above), drops
// contents left unused and sends the change signal before commit, and
// tells this process's notifier after it. It returns nil only once the
// transaction committed.
func (a *account) write(ctx context.Context, what string, fn func(w *wtx) error) error {
	return a.queueWrite(ctx, what, 0, fn)
}

// lazyWrite is write for the changes Options.RelaxedCommits lets commit
// without waiting for the disk: flags and expunges. A
// transaction commits relaxed only when every write it holds is lazy.
func (a *account) lazyWrite(ctx context.Context, what string, fn func(w *wtx) error) error {
	return a.queueWrite(ctx, what, relaxable, fn)
}

// genericWrite is write for APPEND, whose statements keep their cached
// generic plans (genericPlans).
func (a *account) genericWrite(ctx context.Context, what string, fn func(w *wtx) error) error {
	return a.queueWrite(ctx, what, genericPlans, fn)
}

// writeFlags say what a write lets the transaction that runs it do.
type writeFlags uint8

const (
	// relaxable: commit without waiting for the disk under
	// Options.RelaxedCommits.
	relaxable writeFlags = 1 << iota
	// genericPlans: run the cached generic plans of the statements
	// (lockUserGenericSQL). Only for writes whose every statement reads
	// just the rows it names under its generic plan, however many it is
	// given: APPEND's. Not STORE's or EXPUNGE's, which keep PostgreSQL's
	// own choice: held to it, the generic plan of the update of several
	// messages joined the UIDs to the messages by a nested loop, quadratic
	// in their number (a STORE on 10,000 messages took 6.4 s instead of
	// 0.12 s; queueFlagUpdates now bounds it), and that of the search for
	// \Deleted messages read the whole mailbox by its primary key instead
	// of the partial index, depending on the table's statistics.
	genericPlans
)

func (a *account) queueWrite(ctx context.Context, what string, flags writeFlags, fn func(w *wtx) error) error {
	if a.closed.Load() {
		return fmt.Errorf("%s: %w", what, errAccountClosed)
	}
	op := &writeOp{ctx: ctx, what: what, flags: flags, breaks: a.s.breaks.Load(), fn: fn, wake: make(chan struct{})}
	q := a.s.queue(a.id)
	q.mu.Lock()
	q.ops = append(q.ops, op)
	lead := !q.leading
	q.leading = true
	q.mu.Unlock()
	if !lead {
		<-op.wake
		if op.done {
			return a.finish(op)
		}
		// The lead was handed to this write.
	}
	for !op.done {
		q.mu.Lock()
		n := min(len(q.ops), maxGroupCommit)
		batch := q.ops[:n:n]
		q.ops = append([]*writeOp(nil), q.ops[n:]...)
		q.mu.Unlock()
		err := a.runBatch(batch)
		for _, o := range batch {
			if o.err == nil {
				o.err = err
			}
			o.done = true
			if o != op {
				close(o.wake)
			}
		}
	}
	q.mu.Lock()
	if len(q.ops) == 0 {
		q.leading = false
		q.mu.Unlock()
		a.s.forgetQueue(a.id, q)
	} else {
		next := q.ops[0]
		q.mu.Unlock()
		close(next.wake) // hands the lead over
	}
	return a.finish(op)
}

// finish returns a done write's result, telling this process's notifier
// what it changed.
func (a *account) finish(op *writeOp) error {
	if op.err != nil {
		return fmt.Errorf("%s: %w", op.what, op.err)
	}
	a.keywords.learn(op.breaks, a.s.breaks.Load(), &op.w.kwSeen)
	for _, id := range op.w.aclNamed {
		a.s.headsSeen.sawACL(id)
	}
	a.s.raiseFloor(op.w.changed) // before any session can learn of the change
	// A write that spans a reset (restart.go) hands over no delta: the
	// database may have lost it since, and the notifier's reset may
	// already be behind us.
	a.s.resetMu.RLock()
	if op.breaks == a.s.breaks.Load() {
		a.s.sendDeltas(a, op.w)
	}
	a.s.resetMu.RUnlock()
	a.s.notifyLocal(a.name, op.w.changed, op.w.list)
	return nil
}

// runBatch runs ops in one transaction, again from the start after a
// deadlock or serialization failure. An op's own failure is in its err;
// the error returned is the transaction's and fails every op.
func (a *account) runBatch(ops []*writeOp) error {
	ctx := context.WithoutCancel(ops[0].ctx)
	for attempt := 0; ; attempt++ {
		a.s.commits.Add(1)
		err := a.runTx(ctx, ops)
		if err == nil || attempt >= maxRetries || !retryable(err) {
			return err
		}
		a.s.log.Debug("postgres store: retrying a transaction", "err", err)
	}
}

// errNothingCommitted ends a transaction none of whose writes succeeded.
var errNothingCommitted = errors.New("no write of the group succeeded")

// lockUserSQL takes user $1's row lock, which every write holds.
const lockUserSQL = `SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE`

// lockUserGenericSQL is lockUserSQL for a transaction whose writes all
// allow generic plans (genericPlans): it also makes the rest of the
// transaction run the cached generic plans of its statements
// (plan_cache_mode, for this transaction only; PostgreSQL 12), without
// a statement of its own. PostgreSQL otherwise plans APPEND's insert
// again at every run: an array parameter is estimated at ten elements
// and the few ids a message names make a custom plan look cheaper
// (TestWritePlans).
const lockUserGenericSQL = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true) FROM users WHERE id = $1 FOR NO KEY UPDATE`

// lockUserRelaxedSQL is lockUserSQL for a transaction that commits
// relaxed (Options.RelaxedCommits and every write relaxable, or the
// \Recent claim; mailbox.go says what a relaxed commit risks): it also
// sets synchronous_commit off for the transaction (read at COMMIT),
// without a statement of its own.
const lockUserRelaxedSQL = `SELECT set_config('synchronous_commit', 'off', true) FROM users WHERE id = $1 FOR NO KEY UPDATE`

// lockUserGenericRelaxedSQL is both (no write asks for both today:
// APPEND, the one that allows generic plans, commits durably).
const lockUserGenericRelaxedSQL = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true) || set_config('synchronous_commit', 'off', true) FROM users WHERE id = $1 FOR NO KEY UPDATE`

// runTx is one attempt of runBatch. The transaction is managed by hand
// on one connection, so that BEGIN and the row lock go with the write's
// first batch (lockconn.go) and the statements queued for the commit
// and the change signal with COMMIT; a transaction that commits relaxed
// leaves its signal to the node's batched sends instead (signals.go).
func (a *account) runTx(ctx context.Context, ops []*writeOp) (err error) {
	pc, err := a.s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The pool closes a connection released inside a transaction.
	defer pc.Release()
	lc := &lockConn{Conn: pc.Conn(), user: a.id, name: a.name, pending: true, generic: allAllow(ops, genericPlans),
		relaxed: a.s.opts.RelaxedCommits && allAllow(ops, relaxable)}
	conn := lc.Conn
	done := false
	defer func() {
		if !done && !lc.pending && !conn.IsClosed() {
			conn.Exec(ctx, `ROLLBACK`)
		}
	}()
	if len(ops) > 1 {
		// The savepoints need the transaction first.
		if err := lc.begin(ctx); err != nil {
			return err
		}
	}
	all, err := a.runOps(ctx, lc, ops)
	if lc.err != nil {
		return lc.err // the lock's failure explains the others
	}
	if err != nil {
		return err
	}
	if err := lc.begin(ctx); err != nil { // a write that sent nothing
		return err
	}
	// The statements queued for the commit (atCommit, the contents
	// dropped), the change signal of a durable commit and COMMIT: one
	// round trip.
	// Close reads the results in order, running the queued statements'
	// callbacks, and stops at the first error. The server has the whole
	// batch already: a callback failing on a statement that succeeded
	// would not stop the COMMIT, so the callbacks queued for the commit
	// only copy results that cannot fail to scan (insertNew's thread
	// ids, never NULL).
	b := &pgx.Batch{}
	b.QueuedQueries = append(b.QueuedQueries, all.tail.QueuedQueries...)
	if !lc.relaxed {
		all.queueNotify(b)
	}
	var tag pgconn.CommandTag
	b.Queue(`COMMIT`).Exec(func(ct pgconn.CommandTag) error {
		tag = ct
		return nil
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("commit: the transaction was rolled back (%s)", tag)
	}
	done = true
	if lc.relaxed && !a.s.signal(a.name, all.changed, all.list) {
		a.s.sendSignalsOn(ctx, conn, a.s.notifyPayloads(a.name, all.changed, all.list))
	}
	return nil
}

// allAllow reports whether every write of ops allows what f names.
func allAllow(ops []*writeOp, f writeFlags) bool {
	for _, op := range ops {
		if op.flags&f == 0 {
			return false
		}
	}
	return true
}

// runOps runs ops (in savepoints when there are several) in the
// transaction on conn and returns what the successful ones did together,
// with the dropping of the contents they left unused queued for the
// commit.
func (a *account) runOps(ctx context.Context, conn *lockConn, ops []*writeOp) (*wtx, error) {
	all := &wtx{ctx: ctx, tx: conn, a: a, changed: map[int64]uint64{}}
	ok := 0
	for _, op := range ops {
		op.w = &wtx{ctx: ctx, tx: conn, a: a, changed: map[int64]uint64{}}
		if op.err = op.ctx.Err(); op.err != nil {
			continue // given up on while it waited
		}
		if len(ops) == 1 {
			if op.err = op.fn(op.w); op.err != nil {
				if conn.err != nil {
					op.err = conn.err // BEGIN or the lock failed under it
				}
				if retryable(op.err) {
					return nil, op.err
				}
				return nil, errNothingCommitted
			}
		} else if op.err = runInSavepoint(ctx, conn, op); op.err != nil {
			if retryable(op.err) || conn.IsClosed() {
				return nil, op.err
			}
			continue
		}
		ok++
		if len(ops) == 1 {
			all.tail.QueuedQueries = op.w.tail.QueuedQueries
		}
		all.list = all.list || op.w.list
		all.dropped = append(all.dropped, op.w.dropped...)
		for id, ms := range op.w.changed {
			all.changed[id] = max(all.changed[id], ms)
		}
	}
	if ok == 0 {
		return nil, errNothingCommitted
	}
	queueDropUnusedContents(&all.tail, all.dropped)
	return all, nil
}

// runInSavepoint runs op inside a savepoint, undoing it alone when it
// fails; the statements it queued for the commit (atCommit) go with the
// savepoint's release, so that their failure too undoes op alone.
func runInSavepoint(ctx context.Context, conn dbtx, op *writeOp) error {
	if _, err := conn.Exec(ctx, `SAVEPOINT write`); err != nil {
		return err
	}
	err := op.fn(op.w)
	if err == nil {
		b := &pgx.Batch{}
		b.QueuedQueries = append(b.QueuedQueries, op.w.tail.QueuedQueries...)
		op.w.tail = pgx.Batch{}
		b.Queue(`RELEASE SAVEPOINT write`)
		if err = conn.SendBatch(ctx, b).Close(); err == nil {
			return nil
		}
	}
	if _, rerr := conn.Exec(ctx, `ROLLBACK TO SAVEPOINT write`); rerr != nil {
		return fmt.Errorf("%w (undoing it: %v)", err, rerr)
	}
	return err
}
