package index_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestDifferentialPostgres is TestDifferential on the postgres store: its
// commits hand the index their own deltas (APPEND, EXPUNGE, MOVE), a
// second store on the same database plays another node, and afterwards
// every answer of the index equals a fresh store's.
func TestDifferentialPostgres(t *testing.T) {
	for _, budget := range []int64{0, 64 << 10} {
		t.Run(fmt.Sprintf("budget=%d", budget), func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			open := func(n store.Notifier) (store.Store, error) {
				return postgres.Open(context.Background(), url, postgres.Options{Notifier: n})
			}
			x := index.New(nil, index.Options{MemoryBudget: budget})
			st, err := open(x)
			if err != nil {
				t.Fatal(err)
			}
			diffStores(t, x.Wrap(st), x, budget == 0, open)
		})
	}
}
