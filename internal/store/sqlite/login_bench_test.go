package sqlite

import (
	"context"
	"fmt"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// BenchmarkLogin is what the store costs one short session (open the
// account, STATUS INBOX, close) when the user's database is still open
// from an earlier session ("cached") and when more users than stay open
// take turns, so every session opens the database again ("reopened", as
// imaptest's 100 users logging in and out do).
func BenchmarkLogin(b *testing.B) {
	const idle = 8
	for _, c := range []struct {
		name  string
		users int
	}{{"cached", 1}, {"reopened", idle + 1}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, b.TempDir(), Options{Logger: quietLogger(), Fsync: FsyncOptimized, IdleUsers: idle})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			names := make([]string, c.users)
			for i := range names {
				names[i] = fmt.Sprintf("u%d", i)
				if err := s.CreateUser(ctx, names[i], "h"); err != nil {
					b.Fatal(err)
				}
				a, err := s.Account(ctx, names[i])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}}); err != nil {
					b.Fatal(err)
				}
				a.Close()
			}
			i := 0
			measure(b, func() {
				a, err := s.Account(ctx, names[i%len(names)])
				if err != nil {
					b.Fatal(err)
				}
				if st, err := a.Status(ctx, "INBOX"); err != nil || st.Messages != 1 {
					b.Fatalf("STATUS: %+v, %v", st, err)
				}
				a.Close()
				i++
			})
		})
	}
}
