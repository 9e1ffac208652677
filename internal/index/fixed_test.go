package index_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/store"
)

// The fields SORT and THREAD fetch again and again (ENVELOPE, threading
// ids) are cached only while they fit in half the memory budget: a
// mailbox whose fields do not is answered from the store each time, and
// the indexes stay within the budget. Within it they are cached (the
// second fetch is a hit). Either way the answers equal the store's.
func TestFixedFieldsStayInBudget(t *testing.T) {
	const msgs = 200 // about 1.3 KB of fixed fields each: ~260 KB
	for _, tc := range []struct {
		budget int64
		cached bool
	}{
		{budget: 128 << 10, cached: false}, // refused before reading: 200 × the guess is over half of it
		{budget: 300 << 10, cached: false}, // the guess fits, the fields do not: reading stops
		{budget: 4 << 20, cached: true},
	} {
		t.Run(fmt.Sprint(tc.budget), func(t *testing.T) {
			ctx := context.Background()
			a, x := indexedAccount(t, index.Options{MemoryBudget: tc.budget})
			var batch []store.NewMessage
			for i := range msgs {
				refs := strings.Repeat(fmt.Sprintf("<ref-%d-%s@example.org> ", i, strings.Repeat("x", 40)), 12)
				batch = append(batch, store.NewMessage{Body: fmt.Appendf(nil,
					"Subject: thread %d\r\nFrom: A <a@example.org>\r\nMessage-ID: <m%d@example.org>\r\nReferences: %s\r\n\r\nbody\r\n",
					i%7, i, refs)})
			}
			res, err := a.Append(ctx, "INBOX", batch)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := a.Snapshot(ctx, res.MailboxID); err != nil {
				t.Fatal(err)
			}
			want := store.WantDates | store.WantEnvelope | store.WantThreading
			plain := fetchAll(t, ctx, a, res.MailboxID, res.UIDs, want) // not cacheable: the store's answer
			for i := range 2 {
				before := x.Stats()
				got := fetchAll(t, ctx, a, res.MailboxID, res.UIDs, want|store.WantRepeated)
				for j := range got {
					got[j].BaseSubject = store.SubjectKey{} // the cache adds the subject key
				}
				if !reflect.DeepEqual(got, plain) {
					t.Fatalf("fetch %d through the fixed-fields cache differs from the store", i)
				}
				s := x.Stats()
				if s.Bytes > tc.budget {
					t.Errorf("fetch %d: the indexes hold %d bytes, over the budget of %d", i, s.Bytes, tc.budget)
				}
				hit := s.Hits > before.Hits
				if i == 1 && hit != tc.cached {
					t.Errorf("second fetch answered from memory: %v, want %v (%+v)", hit, tc.cached, s)
				}
			}
		})
	}
}
