package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestGroupCommit: writes of one user that queue while another waits
// for the user's row lock share the next transaction; one of them failing
// is undone alone.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s, acct := openUser(t)
	a := acct.(*account)

	// Another node holds the user's row lock.
	blocker := holdUserLock(t, s, a.id)
	before := s.commits.Load()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			box := "INBOX"
			if i == 5 {
				box = "Nope"
			}
			_, errs[i] = acct.Append(ctx, box, []store.NewMessage{{Body: storetest.Msg(i)}})
		}()
	}
	start(0) // leads, waits for the lock
	waitQueue := func(want int) { t.Helper(); waitWriteQueue(t, s, a.id, want) }
	waitQueue(0) // the first leads and took its batch
	for i := 1; i < n; i++ {
		start(i)
	}
	waitQueue(n - 1)
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if i == 5 {
			if !errors.Is(err, store.ErrNoSuchMailbox) {
				t.Fatalf("append to a missing mailbox: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if got := s.commits.Load() - before; got != 2 {
		t.Fatalf("%d transactions for %d queued writes, want 2 (the first alone, then the rest together)", got, n)
	}
	st, err := acct.Status(ctx, "INBOX")
	if err != nil || st.Messages != n-1 || st.UIDNext != n {
		t.Fatalf("INBOX after the group: %+v %v", st, err)
	}
}

// TestWriteQueuesForgotten: a user's write queue leaves the map when its
// writes are done, so the map does not grow with every user ever written.
func TestWriteQueuesForgotten(t *testing.T) {
	ctx := context.Background()
	s := openURL(t, pgtest.NewDatabase(t), nil)
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		name := fmt.Sprintf("u%d", i)
		if err := s.CreateUser(ctx, name, "h"); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.Account(ctx, name)
			if err != nil {
				t.Error(err)
				return
			}
			defer a.Close()
			for j := range 3 {
				if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(j)}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s.queuesMu.Lock()
	left := len(s.queues)
	s.queuesMu.Unlock()
	if left != 0 {
		t.Errorf("%d write queues left after every write finished", left)
	}
}

// TestAtCommitFailure: a statement queued for the commit (atCommit) that
// fails undoes its own write, alone in a transaction or in a group (its
// savepoint), and the writes grouped with it still commit.
func TestAtCommitFailure(t *testing.T) {
	ctx := context.Background()
	s, acct := openUser(t)
	a := acct.(*account)
	res, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}})
	if err != nil {
		t.Fatal(err)
	}
	// failing sets a quota, then queues a statement that fails at commit.
	failing := func() error {
		return a.write(ctx, "failing", func(w *wtx) error {
			if _, err := w.tx.Exec(w.ctx, `UPDATE users SET quota_messages = 7 WHERE id = $1`, a.id); err != nil {
				return err
			}
			w.atCommit(`SELECT 1 / $1::int`, 0)
			return nil
		})
	}
	quotaUntouched := func() {
		t.Helper()
		var q int64
		if err := s.pool.QueryRow(ctx, `SELECT quota_messages FROM users WHERE id = $1`, a.id).Scan(&q); err != nil || q != 0 {
			t.Fatalf("quota after the failed write: %d, %v (want 0)", q, err)
		}
	}
	if err := failing(); err == nil {
		t.Fatal("a write whose commit statement fails succeeded")
	}
	quotaUntouched()

	// In a group: the user's lock is held elsewhere while the writes queue.
	blocker := holdUserLock(t, s, a.id)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	store1 := func(i int, uid uint32) {
		wg.Go(func() {
			_, errs[i] = acct.StoreFlags(ctx, res.MailboxID, []uint32{uid}, store.FlagsAdd, []string{`\Flagged`}, 0, false)
		})
	}
	waitQueue := func(want int) { t.Helper(); waitWriteQueue(t, s, a.id, want) }
	before := s.commits.Load()
	store1(0, res.UIDs[0]) // leads, waits for the lock
	waitQueue(0)
	store1(1, res.UIDs[1])
	waitQueue(1)
	wg.Go(func() { errs[2] = failing() })
	waitQueue(2)
	wg.Go(func() {
		_, errs[3] = acct.StoreFlags(ctx, res.MailboxID, res.UIDs, store.FlagsAdd, []string{`\Seen`}, 0, false)
	})
	waitQueue(3)
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if errs[2] == nil {
		t.Fatal("the failing write in a group succeeded")
	}
	for _, i := range []int{0, 1, 3} {
		if errs[i] != nil {
			t.Fatalf("write %d of the group: %v", i, errs[i])
		}
	}
	if got := s.commits.Load() - before; got != 2 {
		t.Fatalf("%d transactions, want 2 (the first alone, then the rest together)", got)
	}
	quotaUntouched()
	err = acct.Fetch(ctx, res.MailboxID, res.UIDs, store.WantFlags, func(m *store.Message) error {
		if fmt.Sprint(m.Flags) != `[\Flagged \Seen]` {
			return fmt.Errorf("UID %d flags %v", m.UID, m.Flags)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitWriteQueue waits until user's write queue holds want writes behind
// a leader.
func waitWriteQueue(t *testing.T, s *Store, user int64, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		q := s.queue(user)
		q.mu.Lock()
		got, leading := len(q.ops), q.leading
		q.mu.Unlock()
		if got == want && leading {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdUserLock takes user's row lock in a transaction of its own, as
// another node's write would, until the caller rolls it back.
func holdUserLock(t *testing.T, s *Store, user int64) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	blocker, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, user); err != nil {
		t.Fatal(err)
	}
	return blocker
}
