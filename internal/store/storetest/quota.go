package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

func quotaOf(t *testing.T, a store.Account) store.Quota {
	t.Helper()
	q, err := a.Quota(t.Context())
	if err != nil {
		t.Fatalf("Quota: %v", err)
	}
	return q
}

func wantUsage(t *testing.T, a store.Account, msgs, bytes int64) {
	t.Helper()
	q := quotaOf(t, a)
	if q.MessagesUsed != msgs || q.StorageUsed != bytes {
		t.Fatalf("usage = %d messages, %d bytes; want %d, %d", q.MessagesUsed, q.StorageUsed, msgs, bytes)
	}
}

// testQuota checks that usage is exact through every operation that adds
// or removes messages, and that limits are enforced by Append and Copy.
func testQuota(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	other := e.user("v")
	size := int64(len(Msg(1))) // Msg(1)..Msg(9) have equal sizes
	wantUsage(t, a, 0, 0)
	if q := quotaOf(t, a); q.StorageLimit != 0 || q.MessageLimit != 0 {
		t.Fatalf("new user has limits %+v", q)
	}
	appendN(t, a, "INBOX", 1, 3)
	wantUsage(t, a, 3, 3*size)
	wantUsage(t, other, 0, 0)

	if err := a.CreateMailbox(ctx, "Box", ""); err != nil {
		t.Fatal(err)
	}
	inbox := mbox(t, a, "INBOX").ID
	if _, err := a.Copy(ctx, inbox, []uint32{1, 2}, "Box"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, a, 5, 5*size) // copies count as messages of their own
	if _, err := a.Move(ctx, inbox, []uint32{3}, "Box"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, a, 5, 5*size)
	if _, err := a.Expunge(ctx, inbox, []uint32{1}, false); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, a, 4, 4*size)
	// Status reports the size of \Deleted messages (STATUS DELETED-STORAGE).
	if _, err := a.StoreFlags(ctx, inbox, []uint32{2}, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
		t.Fatal(err)
	}
	if st := status(t, a, "INBOX"); st.Deleted != 1 || st.DeletedSize != size {
		t.Fatalf("INBOX status: %d deleted, %d bytes; want 1, %d", st.Deleted, st.DeletedSize, size)
	}

	// Limits: messages.
	if err := a.SetQuota(ctx, 0, 5); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf(t, a); q.MessageLimit != 5 || q.StorageLimit != 0 {
		t.Fatalf("limits %+v, want 5 messages", q)
	}
	_, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: Msg(4)}, {Body: Msg(5)}})
	wantErr(t, "Append over the message limit", err, store.ErrOverQuota)
	wantUsage(t, a, 4, 4*size) // nothing of the failed batch stored
	appendN(t, a, "INBOX", 4, 1)
	wantUsage(t, a, 5, 5*size)
	box := mbox(t, a, "Box").ID
	_, err = a.Copy(ctx, box, []uint32{1}, "INBOX")
	wantErr(t, "Copy over the message limit", err, store.ErrOverQuota)
	// A move does not grow usage and is allowed at the limit.
	if _, err := a.Move(ctx, box, []uint32{1}, "INBOX"); err != nil {
		t.Fatalf("Move at the limit: %v", err)
	}
	wantUsage(t, a, 5, 5*size)
	// Other users are not limited.
	appendN(t, other, "INBOX", 1, 7)

	// Limits: storage (bytes), exact at the boundary.
	if err := a.SetQuota(ctx, 6*size, 0); err != nil {
		t.Fatal(err)
	}
	appendN(t, a, "INBOX", 6, 1) // exactly at the limit
	_, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("x")}})
	wantErr(t, "Append over the storage limit", err, store.ErrOverQuota)
	if err := a.DeleteMailbox(ctx, "Box"); err != nil {
		t.Fatal(err)
	}
	q := quotaOf(t, a)
	if q.MessagesUsed != 4 || q.StorageUsed != 4*size {
		t.Fatalf("after deleting Box: %+v", q)
	}
	if err := a.SetQuota(ctx, -1, 0); err == nil {
		t.Fatal("SetQuota accepted a negative limit")
	}

	// Limits and usage persist.
	e.reopen()
	a = e.account("u")
	q = quotaOf(t, a)
	if q.StorageLimit != 6*size || q.MessageLimit != 0 || q.MessagesUsed != 4 || q.StorageUsed != 4*size {
		t.Fatalf("after reopen: %+v", q)
	}
	if err := a.SetQuota(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	appendN(t, a, "INBOX", 10, 5)
	wantUsage(t, a, 9, 9*size+15) // Msg(10..14) are 3 bytes longer (the number appears three times)
}

// testQuotaConcurrent delivers concurrently to a user with a message limit:
// exactly the limit is stored, every other append fails with
// ErrOverQuota, and usage matches.
func testQuotaConcurrent(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	const limit, workers, per = 25, 8, 10
	if err := a.SetQuota(ctx, 0, limit); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, over int
		other    error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct, err := e.st.Account(ctx, "u")
			if err != nil {
				mu.Lock()
				other = err
				mu.Unlock()
				return
			}
			defer acct.Close()
			for i := range per {
				_, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: Msg(w*100 + i)}})
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrOverQuota):
					over++
				default:
					other = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if other != nil {
		t.Fatal(other)
	}
	if ok != limit || over != workers*per-limit {
		t.Fatalf("%d appends succeeded and %d were over quota; want %d and %d", ok, over, limit, workers*per-limit)
	}
	if st := status(t, a, "INBOX"); st.Messages != limit {
		t.Fatalf("INBOX has %d messages, want %d", st.Messages, limit)
	}
	if q := quotaOf(t, a); q.MessagesUsed != limit {
		t.Fatalf("usage %d messages, want %d", q.MessagesUsed, limit)
	}
}
