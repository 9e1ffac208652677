package postgres

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openURL(t *testing.T, url string, n store.Notifier) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Notifier: n, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestConformance runs storetest with one database per test; the suite's
// directory names the database, so a reopen finds the same one.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dbs := map[string]string{}
	storetest.Run(t, func(t *testing.T, dir string, n store.Notifier) store.Store {
		mu.Lock()
		url, ok := dbs[dir]
		if !ok {
			url = pgtest.NewDatabase(t)
			dbs[dir] = url
		}
		mu.Unlock()
		return openURL(t, url, n)
	})
}
