package sqlite

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// textIndexer drains the users' full-text indexing queues (fts_pending)
// in the background, one user at a time, so that delivery never waits
// for text extraction. It is told about users with new work by Append
// (kick) and when an Account is opened (work queued by another process);
// at start it visits every user once (backfill). The queue is durable, so work a crash
// interrupts is done after the restart.
type textIndexer struct {
	s      *Store
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	todo map[int64]string // user id -> name
	wake chan struct{}    // one slot: todo has entries
}

// startIndexer starts s's indexer (Options.TextIndexer).
func (s *Store) startIndexer() {
	ctx, cancel := context.WithCancel(context.Background())
	x := &textIndexer{s: s, cancel: cancel, done: make(chan struct{}), todo: map[int64]string{}, wake: make(chan struct{}, 1)}
	s.indexer = x
	go x.run(ctx)
}

// stop ends the indexer and waits for it (Store.Close).
func (x *textIndexer) stop() {
	x.cancel()
	<-x.done
}

// kick queues user id for indexing.
func (x *textIndexer) kick(id int64, name string) {
	if x == nil {
		return
	}
	x.mu.Lock()
	x.todo[id] = name
	x.mu.Unlock()
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

func (x *textIndexer) run(ctx context.Context) {
	defer close(x.done)
	if names, err := x.s.Users(ctx); err == nil {
		for _, n := range names {
			if id, err := x.s.userID(ctx, n); err == nil {
				x.kick(id, n)
			}
		}
	} else if ctx.Err() == nil {
		x.s.log.Warn("index: list users for the backfill", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-x.wake:
		}
		// While mail arrives, let a little more queue up first: one
		// commit of the index for several messages costs little more than
		// for one (the index's segment write), and searches read the
		// queued messages meanwhile.
		if time.Since(time.Unix(0, x.s.lastMailWrite.Load())) < deliveryBusy {
			select {
			case <-ctx.Done():
				return
			case <-time.After(indexGather):
			}
		}
		for {
			x.mu.Lock()
			var id int64
			var name string
			for id, name = range x.todo {
				break
			}
			delete(x.todo, id)
			x.mu.Unlock()
			if name == "" {
				break
			}
			if err := x.s.indexUser(ctx, id, name); err != nil && ctx.Err() == nil {
				x.s.log.Warn("index: user's queue not drained; retrying in a minute", "user", name, "err", err)
				time.AfterFunc(time.Minute, func() { x.kick(id, name) })
			}
			if ctx.Err() != nil {
				return
			}
		}
	}
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
	// indexGather is how long the indexer waits, when woken while mail
	// arrives, before it starts: at 100 users each receiving a message
	// every few seconds, a commit then indexes several messages instead
	// of one (17 WAL pages for one small message, few more for five).
	indexGather = 500 * time.Millisecond
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
		n, err := a.indexPending(ctx, ftsBatch, ftsBatchText)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if n == 0 {
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
		n, err := a.indexPending(ctx, ftsBulkBatch, 0)
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
