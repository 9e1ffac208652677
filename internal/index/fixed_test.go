package index_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	msgsort "github.com/tern-imap/tern/internal/sort"
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
			res := appendThreaded(t, ctx, a, msgs)
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

// THREAD's fields are cached compactly (the subject key and the ids
// hashed) where the fixed-fields cache does not fit: the same answers as
// the store's, a hit on the second fetch, within the budget; after an
// expunge and an append, only the missing messages are read and the
// answers still match. With a budget too small even for that, the store
// answers.
func TestThreadCacheFitsWhereEnvelopesDoNot(t *testing.T) {
	const msgs = 200 // ~1.3 KB of fixed fields each, ~125 bytes in the thread cache
	for _, tc := range []struct {
		budget int64
		cached bool
	}{
		{budget: 128 << 10, cached: true}, // TestFixedFieldsStayInBudget: envelopes do not fit
		{budget: 40 << 10, cached: false}, // its half does not hold the thread cache (~25 KB)
	} {
		t.Run(fmt.Sprint(tc.budget), func(t *testing.T) {
			ctx := context.Background()
			a, x := indexedAccount(t, index.Options{MemoryBudget: tc.budget})
			newMsg := func(i int) store.NewMessage {
				refs := strings.Repeat(fmt.Sprintf("<ref-%d-%s@example.org> ", i%5, strings.Repeat("x", 40)), 12)
				return store.NewMessage{Body: fmt.Appendf(nil,
					"Subject: Re: thread %d\r\nFrom: A <a@example.org>\r\nMessage-ID: <m%d@example.org>\r\nReferences: %s\r\n\r\nbody\r\n",
					i%7, i, refs)}
			}
			var batch []store.NewMessage
			for i := range msgs {
				batch = append(batch, newMsg(i))
			}
			res, err := a.Append(ctx, "INBOX", batch)
			if err != nil {
				t.Fatal(err)
			}
			box, uids := res.MailboxID, res.UIDs
			if _, _, err := a.Snapshot(ctx, box); err != nil {
				t.Fatal(err)
			}
			const want = store.WantDates | store.WantEnvelope | store.WantThreading
			check := func(step string, wantHit bool) {
				t.Helper()
				plain := fetchAll(t, ctx, a, box, uids, want) // not cacheable: the store's answer
				before := x.Stats()
				got := fetchAll(t, ctx, a, box, uids, want|store.WantRepeated|store.WantSubjectOnly)
				if len(got) != len(plain) {
					t.Fatalf("%s: %d messages, want %d", step, len(got), len(plain))
				}
				for i, g := range got {
					p := plain[i]
					keys := msgsort.ThreadKeysOf(p.MessageID, p.InReplyTo, p.References, nil)
					if g.ThreadKeys.Known {
						if !reflect.DeepEqual(g.ThreadKeys, keys) || g.MessageID != "" || g.Envelope != nil {
							t.Fatalf("%s: UID %d: keys %+v, want %+v", step, g.UID, g.ThreadKeys, keys)
						}
					} else if g.MessageID != p.MessageID || !reflect.DeepEqual(g.References, p.References) {
						t.Fatalf("%s: UID %d: ids differ from the store's", step, g.UID)
					}
					subject := g.BaseSubject
					if !subject.Known {
						subject = msgsort.EnvelopeSubject(g.Envelope)
					}
					if subject != msgsort.EnvelopeSubject(p.Envelope) || g.UID != p.UID || !g.SentDate.Equal(p.SentDate) {
						t.Fatalf("%s: UID %d: %+v, want subject %+v", step, g.UID, g, msgsort.EnvelopeSubject(p.Envelope))
					}
				}
				s := x.Stats()
				if s.Bytes > tc.budget {
					t.Errorf("%s: the indexes hold %d bytes, over the budget of %d", step, s.Bytes, tc.budget)
				}
				if hit := s.Hits > before.Hits; hit != wantHit {
					t.Errorf("%s: answered from memory: %v, want %v (%+v)", step, hit, wantHit, s)
				}
			}
			check("first fetch", false)
			check("second fetch", tc.cached)
			if _, err := a.StoreFlags(ctx, box, uids[10:20], store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Expunge(ctx, box, nil, true); err != nil {
				t.Fatal(err)
			}
			more, err := a.Append(ctx, "INBOX", []store.NewMessage{newMsg(msgs), newMsg(msgs + 1)})
			if err != nil {
				t.Fatal(err)
			}
			uids = append(append(slices.Clone(uids[:10]), uids[20:]...), more.UIDs...)
			check("after expunge and append", false)
			check("again", tc.cached)
		})
	}
}

// A mailbox with steady new mail and expunges, threaded after each
// change, keeps a thread cache the size of what it holds: the chains and
// subjects of expunged messages are let go.
func TestThreadCacheChurnStaysSmall(t *testing.T) {
	ctx := context.Background()
	a, x := indexedAccount(t, index.Options{MemoryBudget: 8 << 20})
	const want = store.WantDates | store.WantEnvelope | store.WantThreading | store.WantRepeated | store.WantSubjectOnly
	var live []uint32
	var box int64
	var first int64
	for round := range 30 {
		var batch []store.NewMessage
		for i := range 20 {
			refs := strings.Repeat(fmt.Sprintf("<r%d.%d@example.org> ", round, i), 12)
			batch = append(batch, store.NewMessage{Body: fmt.Appendf(nil,
				"Subject: round %d message %d\r\nMessage-ID: <m%d.%d@example.org>\r\nReferences: %s\r\n\r\nbody\r\n", round, i, round, i, refs)})
		}
		res, err := a.Append(ctx, "INBOX", batch)
		if err != nil {
			t.Fatal(err)
		}
		box = res.MailboxID
		if len(live) > 0 {
			if _, err := a.StoreFlags(ctx, box, live, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Expunge(ctx, box, nil, true); err != nil {
				t.Fatal(err)
			}
		}
		live = res.UIDs
		if _, _, err := a.Snapshot(ctx, box); err != nil {
			t.Fatal(err)
		}
		if got := fetchAll(t, ctx, a, box, live, want); len(got) != len(live) || !got[0].ThreadKeys.Known && round > 0 {
			t.Fatalf("round %d: %d messages, keys known %v", round, len(got), got[0].ThreadKeys.Known)
		}
		if round == 1 {
			first = index.ThreadCacheBytes(x)
		}
	}
	if last := index.ThreadCacheBytes(x); last > 2*first {
		t.Errorf("the thread cache grew from %d to %d bytes over 30 rounds of 20 messages in, 20 out", first, last)
	}
}

// The SORT cache (ENVELOPEs) and the THREAD cache of a mailbox share one
// half of the budget: the envelopes that fit it alone are not cached
// beside a thread cache that leaves too little room.
func TestSortAndThreadCachesShareTheirHalf(t *testing.T) {
	const msgs = 200
	const budget = 500 << 10 // half: 256,000 bytes, between the envelopes alone (~238,000) and with the thread cache (~263,000)
	for _, threadFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("thread first ", threadFirst), func(t *testing.T) {
			ctx := context.Background()
			a, x := indexedAccount(t, index.Options{MemoryBudget: budget})
			res := appendThreaded(t, ctx, a, msgs)
			if threadFirst {
				fetchAll(t, ctx, a, res.MailboxID, res.UIDs, store.WantDates|store.WantEnvelope|store.WantThreading|store.WantRepeated|store.WantSubjectOnly)
				if index.ThreadCacheBytes(x) == 0 {
					t.Fatal("THREAD's fields were not cached")
				}
			}
			sortWant := store.WantDates | store.WantEnvelope | store.WantRepeated
			fetchAll(t, ctx, a, res.MailboxID, res.UIDs, sortWant)
			before := x.Stats()
			fetchAll(t, ctx, a, res.MailboxID, res.UIDs, sortWant)
			if hit := x.Stats().Hits > before.Hits; hit == threadFirst {
				t.Errorf("second SORT fetch answered from memory: %v, want %v (%+v)", hit, !threadFirst, x.Stats())
			}
		})
	}
}

// appendThreaded appends n messages to INBOX, each with twelve long
// References in seven threads by subject, and loads the mailbox's index.
func appendThreaded(t *testing.T, ctx context.Context, a store.Account, n int) store.AppendResult {
	t.Helper()
	var batch []store.NewMessage
	for i := range n {
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
	return res
}
