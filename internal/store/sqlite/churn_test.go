package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestAccountChurn: sessions of more users than stay open (maxIdleUsers)
// log in, write and log out from several goroutines, so users' databases
// close while others, and the same user's next session, open. Every
// login and write succeeds: opening a mail.db beside the closing of its
// last other connection waited (sqldb's dial) instead of failing with
// "database is locked", which imaptest's default profile saw.
func TestAccountChurn(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	t.Cleanup(func() { s.Close() })
	const users = maxIdleUsers + 16
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
