package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// TestAccountChurn: sessions of more users than stay open (Options.IdleUsers)
// log in, write and log out from several goroutines, so users' databases
// close while others, and the same user's next session, open. Every
// login and write succeeds: opening a mail.db beside the closing of its
// last other connection waited (sqldb's dial) instead of failing with
// "database is locked", which imaptest's default profile saw.
func TestAccountChurn(t *testing.T) {
	ctx := context.Background()
	const idle = 8
	s := openWith(t, t.TempDir(), Options{IdleUsers: idle, InlineBodyMax: -1})
	t.Cleanup(func() { s.Close() })
	const users = idle + 16
	for i := range users {
		if err := s.CreateUser(ctx, fmt.Sprintf("u%d", i), "h"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 60 {
				name := fmt.Sprintf("u%d", r.IntN(users))
				a, err := s.Account(ctx, name)
				if err == nil {
					_, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", i)}})
					a.Close()
				}
				if err != nil {
					errs <- fmt.Errorf("session %d of goroutine %d (%s): %w", i, g, name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestIdleUsersStayOpen: after its last session, a user's database stays
// open, once idle for a while (trimAfter) with one connection (the others,
// and the scan connections, are closed); the next session of the user
// finds it open, and only Options.IdleUsers users stay so, the least
// recently used closing first.
func TestIdleUsersStayOpen(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, t.TempDir(), Options{IdleUsers: 2, InlineBodyMax: -1})
	t.Cleanup(func() { s.Close() })
	s.trimAfter = 0 // trimmed as soon as idle
	names := []string{"u0", "u1", "u2"}
	dbs := map[string]*userDB{}
	for _, name := range names {
		if err := s.CreateUser(ctx, name, "h"); err != nil {
			t.Fatal(err)
		}
		a, err := s.Account(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		u := a.(*account).u
		dbs[name] = u
		// Three reads at once: three connections, then idle in the pool.
		var open []*sqldb.Rows
		for range 3 {
			rows, err := u.db.QueryContext(ctx, `SELECT id FROM mailboxes`)
			if err != nil {
				t.Fatal(err)
			}
			open = append(open, rows)
		}
		scanRows, err := u.scan.QueryContext(ctx, `SELECT id FROM mailboxes`)
		if err != nil {
			t.Fatal(err)
		}
		scanRows.Close()
		for _, r := range open {
			r.Close()
		}
		if n := u.db.OpenConnections(); n != 3 {
			t.Fatalf("%s in use: %d connections, want 3", name, n)
		}
		a.Close()
		if n, m := u.db.OpenConnections(), u.scan.OpenConnections(); n != 1 || m != 0 {
			t.Errorf("%s idle: %d connections and %d scan connections, want 1 and 0", name, n, m)
		}
	}
	s.mu.Lock()
	_, u0 := s.users[dbs["u0"].id]
	idle := len(s.idle)
	s.mu.Unlock()
	if u0 || idle != 2 {
		t.Errorf("after three users' sessions with IdleUsers 2: u0 still open %v, %d idle, want false and 2", u0, idle)
	}
	if n := dbs["u0"].db.OpenConnections(); n != 0 {
		t.Errorf("u0 closed with %d connections open", n)
	}
	a, err := s.Account(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.(*account).u != dbs["u1"] {
		t.Error("u1's next session opened its database again")
	}
	if _, err := a.Status(ctx, "INBOX"); err != nil {
		t.Error(err)
	}
}

// TestIdleUserTrimmedLater: an idle user's database keeps its connections
// for trimAfter (a session coming back soon finds them), then one.
func TestIdleUserTrimmedLater(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, t.TempDir(), Options{InlineBodyMax: -1})
	t.Cleanup(func() { s.Close() })
	s.trimAfter = 300 * time.Millisecond
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	u := a.(*account).u
	r1, err := u.db.QueryContext(ctx, `SELECT id FROM mailboxes`)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := u.db.QueryContext(ctx, `SELECT id FROM mailboxes`)
	if err != nil {
		t.Fatal(err)
	}
	r1.Close()
	r2.Close()
	start := time.Now()
	a.Close()
	if n := u.db.OpenConnections(); n != 2 && time.Since(start) < s.trimAfter {
		t.Fatalf("just idle: %d connections, want 2", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for u.db.OpenConnections() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("idle for 5 s: %d connections, want 1", u.db.OpenConnections())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d < s.trimAfter {
		t.Errorf("trimmed after %v, before trimAfter (%v)", d, s.trimAfter)
	}
}
