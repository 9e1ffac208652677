package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

func TestMain(m *testing.M) {
	os.Exit(s3test.Wrap(func() int { return pgtest.Main(m) }))
}

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

// TestNewerSchemaRefused: a database migrated by a newer tern is not
// opened.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := openURL(t, url, nil)
	if _, err := s.pool.Exec(ctx, `UPDATE tern_schema SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, url, Options{Logger: quietLogger()}); !errors.Is(err, errNewerSchema) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

// TestBodiesShared: the same bytes delivered to two users are stored
// once, and go when the last message using them does.
func TestBodiesShared(t *testing.T) {
	ctx := context.Background()
	s := openURL(t, pgtest.NewDatabase(t), nil)
	defer s.Close()
	count := func() (n, refs int64) {
		t.Helper()
		if err := s.pool.QueryRow(ctx, `SELECT count(*), COALESCE(sum(refs), 0) FROM bodies`).Scan(&n, &refs); err != nil {
			t.Fatal(err)
		}
		return n, refs
	}
	msg := []store.NewMessage{{Body: storetest.Msg(1)}}
	var ids []int64
	for _, u := range []string{"u", "v"} {
		if err := s.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
		a, err := s.Account(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		res, err := a.Append(ctx, "INBOX", msg)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.MailboxID)
		if _, err := a.Copy(ctx, res.MailboxID, res.UIDs, "INBOX"); err != nil {
			t.Fatal(err)
		}
	}
	if n, refs := count(); n != 1 || refs != 2 {
		t.Fatalf("after two deliveries of one body: %d bodies, %d references", n, refs)
	}
	u, _ := s.Account(ctx, "u")
	defer u.Close()
	if _, err := u.Expunge(ctx, ids[0], nil, false); err != nil {
		t.Fatal(err)
	}
	if n, refs := count(); n != 1 || refs != 1 {
		t.Fatalf("after one user's expunge: %d bodies, %d references", n, refs)
	}
	if err := s.DeleteUser(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	if n, _ := count(); n != 0 {
		t.Fatalf("after the last user went: %d bodies", n)
	}
}
