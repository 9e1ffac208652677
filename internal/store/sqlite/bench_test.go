package sqlite

import (
	"context"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

func benchAccount(b *testing.B) (*Store, store.Account) {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir(), Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		b.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return s, a
}

func BenchmarkAppend(b *testing.B) {
	_, a := benchAccount(b)
	ctx := context.Background()
	msg := []store.NewMessage{{Body: storetest.Msg(1), Flags: []string{`\Seen`}}}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg[0].Body)))
	for b.Loop() {
		if _, err := a.Append(ctx, "INBOX", msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFetchFlags10k(b *testing.B) {
	_, a := benchAccount(b)
	ctx := context.Background()
	const n = 10000
	batch := make([]store.NewMessage, 500)
	for i := range batch {
		batch[i] = store.NewMessage{Body: storetest.Msg(i), Flags: []string{`\Seen`, "$Label"}}
	}
	var id int64
	for range n / len(batch) {
		res, err := a.Append(ctx, "INBOX", batch)
		if err != nil {
			b.Fatal(err)
		}
		id = res.MailboxID
	}
	uids := make([]uint32, n)
	for i := range uids {
		uids[i] = uint32(i + 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		count := 0
		err := a.Fetch(ctx, id, uids, store.WantFlags, func(m *store.Message) error {
			count++
			return nil
		})
		if err != nil || count != n {
			b.Fatalf("fetched %d, %v", count, err)
		}
	}
}
