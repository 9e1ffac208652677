package index_test

import (
	"context"
	"slices"
	"testing"
	"unsafe"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// openIndexed opens the sqlite backend behind the mailbox index, wired as
// tern serve wires it.
func openIndexed(t testing.TB, dir string, n store.Notifier, opts index.Options) (store.Store, *index.Indexes) {
	t.Helper()
	x := index.New(n, opts)
	st, err := sqlite.Open(context.Background(), dir, sqlite.Options{Notifier: x})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return x.Wrap(st), x
}

// indexedAccount opens a store behind the mailbox index (openIndexed) in
// a temporary directory and returns the account of a new user "u"; both
// are closed when the test ends.
func indexedAccount(t *testing.T, opts index.Options) (store.Account, *index.Indexes) {
	t.Helper()
	ctx := context.Background()
	st, x := openIndexed(t, t.TempDir(), nil, opts)
	t.Cleanup(func() { st.Close() })
	if err := st.CreateUser(ctx, "u", ""); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, x
}

// The whole conformance suite, answered through the index.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string, n store.Notifier) store.Store {
		st, _ := openIndexed(t, dir, n, index.Options{})
		return st
	})
}

// The suite again with a budget so small that every index is evicted as
// soon as another one loads: answers must not change.
func TestConformanceEvicting(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string, n store.Notifier) store.Store {
		st, _ := openIndexed(t, dir, n, index.Options{MemoryBudget: 1})
		return st
	})
}

// TestSnapshotSharesUIDs: sessions selecting the same mailbox get the
// index's UID list itself, not a copy each (one array, clipped so that
// a session's append cannot write into it), and an expunge the index
// applies afterwards leaves the lists already handed out as they were.
func TestSnapshotSharesUIDs(t *testing.T) {
	ctx := context.Background()
	a, _ := indexedAccount(t, index.Options{})
	for i := range 5 {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	_, first, err := a.Snapshot(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := a.Snapshot(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 5 || unsafe.SliceData(first) != unsafe.SliceData(second) || cap(first) != len(first) {
		t.Fatalf("snapshots %v (cap %d) and %v do not share one clipped array", first, cap(first), second)
	}
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{2, 4}, false); err != nil {
		t.Fatal(err)
	}
	_, after, err := a.Snapshot(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first, []uint32{1, 2, 3, 4, 5}) || !slices.Equal(second, first) || !slices.Equal(after, []uint32{1, 3, 5}) {
		t.Fatalf("after the expunge: earlier snapshots %v %v, new one %v", first, second, after)
	}
}
