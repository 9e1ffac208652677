package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestGroupCommit: writes of one user that queue while another waits
// for the user's row lock share the next transaction; one of them failing
// is undone alone.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := openURL(t, pgtest.NewDatabase(t), nil)
	defer s.Close()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	acct, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	a := acct.(*account)

	// Another node holds the user's row lock.
	blocker, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, a.id); err != nil {
		t.Fatal(err)
	}
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
	waitQueue := func(want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			q := s.queue(a.id)
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
