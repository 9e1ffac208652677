package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// textIndexer drains the users' full-text indexing queues (fts_pending)
// in the background, one user at a time, so that delivery never waits
// for text extraction. It is told about users with new work by Append and
// expunges that free contents (kick) and when an Account is opened (work
// queued by another process); at start it visits every user once
// (backfill). The queue is durable, so work a crash interrupts is done
// after the restart.
//
// A user's queue is indexed once that user's mail has been left alone for
// indexQuiet, or when indexBacklog messages wait in it. Mail that is
// expunged while it waits (a client filing or deleting what just arrived,
// a test tool's steady churn) is then never indexed and never removed
// from the index again, a burst of deliveries is indexed in few commits,
// and the indexer does not take a busy user's write lock between that
// user's own writes. Searches read the queued messages meanwhile, so
// nothing waits for the index to be found, and indexBacklog bounds what
// they read. What is counted on the way is what arrived (kick); once that
// reaches indexBacklog the queue itself is counted (fullQueue), and if
// most of it went again the user goes back to waiting with what is left.
type textIndexer struct {
	s      *Store
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	todo map[int64]*indexWork // user id -> work
	wake chan struct{}        // one slot: todo changed
}

// indexWork is one user's wait for the indexer.
type indexWork struct {
	name  string
	due   time.Time // when to start
	added int       // messages queued since the user was last drained (at most)
	full  bool      // due because added reached indexBacklog: count the queue first
}

const (
	// indexQuiet is how long a user's mail must be left alone before its
	// queue is indexed.
	indexQuiet = 2 * time.Second
	// indexBacklog is how many queued messages start the indexing of a
	// user whose mail is never left alone for indexQuiet.
	indexBacklog = 256
)

// startIndexer starts s's indexer (Options.TextIndexer).
func (s *Store) startIndexer() {
	ctx, cancel := context.WithCancel(context.Background())
	x := &textIndexer{s: s, cancel: cancel, done: make(chan struct{}), todo: map[int64]*indexWork{}, wake: make(chan struct{}, 1)}
	s.indexer = x
	go x.run(ctx)
}

// stop ends the indexer and waits for it (Store.Close).
func (x *textIndexer) stop() {
	x.cancel()
	<-x.done
}

// kick tells the indexer that user id's mail changed, added messages of
// it queued: its indexing waits until the mail is left alone for
// indexQuiet, or the backlog is reached.
func (x *textIndexer) kick(id int64, name string, added int) {
	x.schedule(id, name, added, indexQuiet)
}

// schedule queues user id for indexing after wait, or later if it waits
// already (the backfill does not cut a quiet wait short), or at once when
// the messages added since its last drain reach indexBacklog.
func (x *textIndexer) schedule(id int64, name string, added int, wait time.Duration) {
	if x == nil {
		return
	}
	x.mu.Lock()
	w := x.todo[id]
	if w == nil {
		w = &indexWork{name: name}
		x.todo[id] = w
	}
	w.added += added
	if due := time.Now().Add(wait); due.After(w.due) {
		w.due = due
	}
	if w.added >= indexBacklog {
		w.due, w.full = time.Time{}, true
	}
	x.mu.Unlock()
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// next takes a user whose indexing is due (full: by the count of what
// arrived), or reports how long until the first one is (ok false; a
// negative wait when none is queued).
func (x *textIndexer) next() (id int64, name string, full bool, wait time.Duration, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := time.Now()
	wait = -1
	for i, w := range x.todo {
		if d := w.due.Sub(now); d > 0 {
			if wait < 0 || d < wait {
				wait = d
			}
			continue
		}
		delete(x.todo, i)
		return i, w.name, w.full, 0, true
	}
	return 0, "", false, wait, false
}

func (x *textIndexer) run(ctx context.Context) {
	defer close(x.done)
	if names, err := x.s.Users(ctx); err == nil {
		for _, n := range names {
			if id, err := x.s.userID(ctx, n); err == nil {
				x.schedule(id, n, 0, 0)
			}
		}
	} else if ctx.Err() == nil {
		x.s.log.Warn("index: list users for the backfill", "err", err)
	}
	for {
		id, name, full, wait, ok := x.next()
		if !ok {
			if !x.sleep(ctx, wait) {
				return
			}
			continue
		}
		if full && !x.fullQueue(ctx, id, name) {
			continue
		}
		if err := x.s.indexUser(ctx, id, name); err != nil && ctx.Err() == nil {
			x.s.log.Warn("index: user's queue not drained; retrying in a minute", "user", name, "err", err)
			x.schedule(id, name, 0, time.Minute)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// fullQueue reports whether user id's queue holds indexBacklog messages
// now that as many arrived; when most of them were expunged again, it
// puts the user back to wait (indexQuiet, or until what waits and what
// arrives reach indexBacklog). A queue it cannot count is taken as full.
func (x *textIndexer) fullQueue(ctx context.Context, id int64, name string) bool {
	queued, err := x.s.queuedForIndex(ctx, id, name)
	if err != nil || queued >= indexBacklog {
		return true
	}
	x.schedule(id, name, queued, indexQuiet)
	return false
}

// queuedForIndex counts the messages user id's queue holds.
func (s *Store) queuedForIndex(ctx context.Context, id int64, name string) (int, error) {
	u, err := s.acquireID(ctx, id, name)
	if err != nil {
		return 0, err
	}
	defer s.release(u)
	var n int
	if err := u.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fts_pending WHERE state = 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the index queue of %s: %w", name, err)
	}
	return n, nil
}

// sleep waits for a kick, or for wait when it is not negative; false
// when ctx ended.
func (x *textIndexer) sleep(ctx context.Context, wait time.Duration) bool {
	var timer <-chan time.Time
	if wait >= 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-x.wake:
	case <-timer:
	}
	return true
}

// While mail arrives (an Append, or an expunge that freed contents, less
// than deliveryBusy ago), the
// indexer works at most one part in indexDuty of the time: after a batch
// that took d it pauses (indexDuty-1)*d. Delivery then keeps most of the
// CPU and the write lock, and the queue (durable, and searched by
// reading the queued messages) absorbs a burst; when deliveries pause,
// the indexer runs flat out.
const (
	deliveryBusy = 2 * time.Second
	indexDuty    = 5
)

// indexUser drains one user's queue.
func (s *Store) indexUser(ctx context.Context, id int64, name string) error {
	u, err := s.acquireID(ctx, id, name)
	if err != nil {
		return err
	}
	defer s.release(u)
	a := &account{s: s, u: u}
	if err := a.purgeGoneText(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	for {
		t0 := time.Now()
		_, more, err := a.indexPending(ctx, ftsBatch, ftsBatchText)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if !more {
			// What was queued when the batch was read is indexed. Mail
			// that arrived since waits for its own turn (kick): chasing a
			// steady trickle of deliveries batch after batch indexed a
			// few messages per transaction, at the cost of a transaction
			// (the index's segments, the vocabulary) each.
			return nil
		}
		if time.Since(time.Unix(0, s.lastMailWrite.Load())) < deliveryBusy {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After((indexDuty - 1) * time.Since(t0)):
			}
		}
	}
}

// IndexText indexes the queued contents of user now (tern index),
// calling progress after each batch with the number indexed so far and
// the number still queued. With rebuild, the user's index is emptied and
// every content queued again first.
func (s *Store) IndexText(ctx context.Context, user string, rebuild bool, progress func(done, left int)) error {
	acct, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	a := acct.(*account)
	defer a.Close()
	if rebuild {
		if err := a.write(ctx, "index: rebuild", func(w *wtx) error {
			for _, q := range slices.Concat(ftsClear, []string{`DELETE FROM fts_pending`, queueBackfill}) {
				if _, err := w.tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := a.purgeGoneText(ctx); err != nil {
		return err
	}
	done := 0
	for {
		n, _, err := a.indexPending(ctx, ftsBulkBatch, 0)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		done += n
		if progress != nil {
			var left int
			if err := a.u.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fts_pending WHERE state = 0`).Scan(&left); err != nil {
				return err
			}
			progress(done, left)
		}
	}
}
