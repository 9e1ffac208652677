package sqlite

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// queued waits until n writes of u wait for a commit.
func queued(t *testing.T, u *userDB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		u.wqMu.Lock()
		l := len(u.wq)
		u.wqMu.Unlock()
		if l >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", l, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitBatch: writes queued while the write lock is held commit
// together in one transaction, in order; the ones that fail (no such
// mailbox, over quota, given up on while queued) are undone alone.
func TestGroupCommitBatch(t *testing.T) {
	ctx := context.Background()
	s, _, a := openUser(t)
	if err := a.SetQuota(ctx, 0, 12); err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	const n = 20
	type result struct {
		uids []uint32
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	const canceled = 7
	cctx, cancel := context.WithCancel(ctx)
	u.wmu.Lock()
	before := u.commits.Load()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			box := "INBOX"
			if i%5 == 4 {
				box = "Nope" // fails: no such mailbox
			}
			c := ctx
			if i == canceled {
				c = cctx
			}
			res, err := a.Append(c, box, []store.NewMessage{{Body: storetest.Msg(i)}})
			results[i] = result{res.UIDs, err}
		}()
		queued(t, u, i+1) // queue in order i
	}
	cancel()
	u.wmu.Unlock()
	wg.Wait()
	if c := u.commits.Load() - before; c != 1 {
		t.Errorf("%d writes took %d transactions, want 1", n, c)
	}
	// 15 appends to INBOX in queue order; the quota admits 12.
	var acked []uint32
	ok := 0
	for i, r := range results {
		switch {
		case i%5 == 4:
			if !errors.Is(r.err, store.ErrNoSuchMailbox) {
				t.Errorf("append %d to a missing mailbox: %v", i, r.err)
			}
		case i == canceled:
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("append %d given up on: %v", i, r.err)
			}
		case ok < 12:
			if r.err != nil || len(r.uids) != 1 {
				t.Fatalf("append %d: %v %v", i, r.uids, r.err)
			}
			ok++
			acked = append(acked, r.uids[0])
		default:
			if !errors.Is(r.err, store.ErrOverQuota) {
				t.Errorf("append %d over quota: %v", i, r.err)
			}
		}
	}
	box, _ := a.Mailbox(ctx, "INBOX")
	st, uids, err := a.Snapshot(ctx, box.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	if !slices.Equal(acked, want) || !slices.Equal(uids, want) || st.UIDNext != 13 {
		t.Fatalf("acknowledged %v, mailbox has %v (UIDNEXT %d), want %v", acked, uids, st.UIDNext, want)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("check: %q %v", p, err)
	}
}

// TestGroupCommitConcurrent: many goroutines append (and store flags)
// concurrently; every acknowledged message is there, with a unique UID,
// each goroutine's UIDs ascend, and nothing else is there.
func TestGroupCommitConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _, a := openUser(t)
	u := s.users[1]
	const goroutines, each = 16, 15
	acked := make([][]uint32, goroutines)
	errs := make(chan error, goroutines)
	before := u.commits.Load()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(g*100 + i)}})
				if err != nil {
					errs <- err
					return
				}
				acked[g] = append(acked[g], res.UIDs...)
				if g%4 == 0 {
					if _, err := a.StoreFlags(ctx, res.MailboxID, res.UIDs, store.FlagsAdd, []string{`\Flagged`}, 0, false); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []uint32
	for g, uids := range acked {
		if len(uids) != each || !slices.IsSorted(uids) {
			t.Fatalf("goroutine %d got UIDs %v", g, uids)
		}
		all = append(all, uids...)
	}
	slices.Sort(all)
	if len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatalf("duplicate UIDs: %v", all)
	}
	box, _ := a.Mailbox(ctx, "INBOX")
	_, uids, err := a.Snapshot(ctx, box.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids, all) {
		t.Fatalf("mailbox has %v, acknowledged %v", uids, all)
	}
	flagged := 0
	err = a.Fetch(ctx, box.ID, uids, store.WantFlags, func(m *store.Message) error {
		if slices.Contains(m.Flags, `\Flagged`) {
			flagged++
		}
		return nil
	})
	if err != nil || flagged != 4*each {
		t.Fatalf("%d flagged, want %d (%v)", flagged, 4*each, err)
	}
	writes := goroutines*each + 4*each
	t.Logf("%d writes in %d transactions", writes, u.commits.Load()-before)
}

// TestGroupCommitCancelledWriter: a write whose context is cancelled while
// it runs in a shared batch does not fail the other writes of the batch
// (its statements must not leave a cancelled statement in the
// transaction's cache, nor interrupt SQLite, which would roll back all).
func TestGroupCommitCancelledWriter(t *testing.T) {
	ctx := context.Background()
	s, _, a := openUser(t)
	if _, err := a.Mailbox(ctx, "INBOX"); err != nil { // caches the lookup statement
		t.Fatal(err)
	}
	acct := a.(*account)
	u := s.users[1]
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u.wmu.Lock()
	errs := make(chan error, 2)
	go func() {
		errs <- acct.write(cctx, "cancelled", func(w *wtx) error {
			cancel()                                   // the client goes away while its write runs
			_, err := mboxByName(w.ctx, w.tx, "INBOX") // a statement Append uses too
			return err
		})
	}()
	queued(t, u, 1)
	var appendErr error
	done := make(chan struct{})
	go func() {
		_, appendErr = a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}})
		close(done)
	}()
	queued(t, u, 2)
	u.wmu.Unlock()
	<-done
	<-errs
	if appendErr != nil {
		t.Fatalf("the other write of the batch failed: %v", appendErr)
	}
	if st, err := a.Status(ctx, "INBOX"); err != nil || st.Messages != 1 {
		t.Fatalf("after the batch: %+v, %v", st, err)
	}
}

// TestGroupCommitExpungeRemovesBodies: an expunge that commits in a batch
// shared with other writes still removes the body files it freed.
func TestGroupCommitExpungeRemovesBodies(t *testing.T) {
	ctx := context.Background()
	s, dir, a := openUser(t)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	u.wmu.Lock()
	errs := make(chan error, 2)
	go func() { // first in the batch: an append that succeeds
		_, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(3)}})
		errs <- err
	}()
	queued(t, u, 1)
	go func() {
		_, err := a.Expunge(ctx, res.MailboxID, []uint32{1, 2}, false)
		errs <- err
	}()
	queued(t, u, 2)
	before := u.commits.Load()
	u.wmu.Unlock()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := u.commits.Load() - before; n != 1 {
		t.Fatalf("%d commits, want the two writes in one", n)
	}
	if files := blobFiles(t, dir, 1); len(files) != 1 {
		t.Fatalf("body files after the batch: %v, want only the appended one", files)
	}
}
