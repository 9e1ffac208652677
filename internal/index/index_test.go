package index_test

import (
	"context"
	"testing"

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
