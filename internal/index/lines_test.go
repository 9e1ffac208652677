package index_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// fieldKeys are one-field SEARCH keys over storetest.Msg's mail (and
// linesMsg's): senders, recipients and subjects that match all, some or
// none of the messages, an empty needle (the field is present) and a
// field none has.
var fieldKeys = []*imap.SearchKey{
	{Op: imap.SearchFrom, Str: "alice"},
	{Op: imap.SearchFrom, Str: "ALICE@EXAMPLE.ORG"},
	{Op: imap.SearchTo, Str: "bob"},
	{Op: imap.SearchSubject, Str: "message 1"},
	{Op: imap.SearchSubject, Str: "ssage 2"},
	{Op: imap.SearchSubject, Str: ""},
	{Op: imap.SearchCc, Str: "carol"},
	{Op: imap.SearchBcc, Str: ""},
	{Op: imap.SearchSubject, Str: "zzz"},
	{Op: imap.SearchFrom, Str: "Zoë"},
}

// checkFieldSearch asks ia (an account behind the index) the keys of
// fieldKeys in one search, as the server asks the text keys of one
// SEARCH (one store.TextQuery per key), and checks each key's answer
// against the scan: search.Match on each message's stored header, read
// from fa. When cached, every message must be decided (none Pending):
// the index answers from its field lines; otherwise (a budget too small
// for them) the store may answer instead, with the messages it has not
// indexed pending, or not at all (postgres: ErrNoTextIndex).
func checkFieldSearch(t *testing.T, ctx context.Context, ia, fa store.Account, name string, cached bool) {
	t.Helper()
	info, err := fa.Mailbox(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	_, uids, err := fa.Snapshot(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	msgs := fetchAll(t, ctx, fa, info.ID, uids, store.WantHeader)
	all := &imap.SearchKey{Op: imap.SearchAnd, Children: fieldKeys}
	leaves := search.TextLeaves(all)
	res, err := ia.SearchText(ctx, info.ID, search.TextQueries(all, leaves))
	if !cached && errors.Is(err, store.ErrNoTextIndex) {
		return
	}
	if err != nil {
		t.Fatalf("%s: SearchText through the index: %v", name, err)
	}
	if cached && len(res.Pending) > 0 || len(res.Hits) != len(leaves) {
		t.Fatalf("%s: SearchText through the index: %d hit lists for %d keys, pending %v", name, len(res.Hits), len(leaves), res.Pending)
	}
	for i, key := range leaves {
		var want []uint32
		for j := range msgs {
			ok, err := search.Match(key, &search.Candidate{Msg: &msgs[j]}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, pending := slices.BinarySearch(res.Pending, msgs[j].UID); ok && !pending {
				want = append(want, msgs[j].UID)
			}
		}
		if !slices.Equal(res.Hits[i], want) {
			t.Errorf("%s: %v %q through the index: %v, the scan: %v", name, key.Op, key.Str, res.Hits[i], want)
		}
	}
}

// linesMsg is a message with encoded words, folded and repeated fields.
func linesMsg(n int) []byte {
	return fmt.Appendf(nil, "From: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.org>\r\nTo: bob@example.org,\r\n Carol <carol@example.org>\r\n"+
		"Cc: carol@example.org\r\nSubject: =?UTF-8?B?bWVzc2FnZSAy?= %d\r\nSubject: second\r\n\r\nbody %d\r\n", n, n)
}

// TestFieldLines: one-field searches answered from the index's field
// lines agree with the scan after appends and an expunge, are answered
// from memory once filled (hits, no misses), and fall back to the store
// when the lines would not fit their share of the budget.
func TestFieldLines(t *testing.T) {
	ctx := context.Background()
	a, x := indexedAccount(t, index.Options{})
	var msgs []store.NewMessage
	for i := range 30 {
		body := linesMsg(i)
		if i%2 == 0 {
			body = storeMsg(i)
		}
		msgs = append(msgs, store.NewMessage{Body: body})
	}
	res, err := a.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	checkFieldSearch(t, ctx, a, a, "INBOX", true)
	before := x.Stats()
	checkFieldSearch(t, ctx, a, a, "INBOX", true)
	after := x.Stats()
	if after.Misses != before.Misses || after.Hits <= before.Hits {
		t.Errorf("second round of searches: stats %+v, before %+v: want the search a hit", after, before)
	}
	if _, err := a.StoreFlags(ctx, res.MailboxID, res.UIDs[:10], store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, res.MailboxID, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: linesMsg(100)}, {Body: storeMsg(101)}}); err != nil {
		t.Fatal(err)
	}
	checkFieldSearch(t, ctx, a, a, "INBOX", true)
	if err := index.CheckLines(x); err != nil {
		t.Error(err)
	}

	// A budget whose quarter cannot hold thirty messages' lines: the
	// store answers (SQLite's own index), still right.
	small, sx := indexedAccount(t, index.Options{MemoryBudget: 4 << 10})
	if _, err := small.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	info, err := small.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	key := &imap.SearchKey{Op: imap.SearchFrom, Str: "zoe"}
	m0 := sx.Stats().Misses
	got, err := small.SearchText(ctx, info.ID, search.TextQueries(key, search.TextLeaves(key)))
	if err != nil && !errors.Is(err, store.ErrNoTextIndex) {
		t.Fatal(err)
	}
	if sx.Stats().Misses != m0+1 {
		t.Errorf("search over budget: misses %d, want %d (the store asked)", sx.Stats().Misses, m0+1)
	}
	if sx.Stats().Bytes > 4<<10 {
		t.Errorf("indexes hold %d bytes, over the 4 KiB budget", sx.Stats().Bytes)
	}
	for _, u := range got.Hits[0] {
		if _, pending := slices.BinarySearch(got.Pending, u); pending {
			t.Errorf("UID %d both a hit and pending", u)
		}
	}
}

func storeMsg(n int) []byte {
	return fmt.Appendf(nil, "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\n"+
		"Subject: message %d\r\nDate: Mon, 2 Feb 2026 10:00:00 +0100\r\n\r\nBody of message %d.\r\n", n, n)
}

// spyStore wraps a store to count what the index asks of it: header
// fetches and its own text searches; it can drop the stored headers (as
// contents from before SQLite schema 2 have none) and play a store
// without a text index (as postgres).
type spyStore struct {
	store.Store
	nilHeaders, noIndex bool
	c                   *spyCounts
}

type spyCounts struct {
	headerFetches, storeSearches, bodyOpens atomic.Int64
}

func (s spyStore) Account(ctx context.Context, user string) (store.Account, error) {
	a, err := s.Store.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	return spyAccount{Account: a, IndexSource: a.(store.IndexSource), s: s}, nil
}

type spyAccount struct {
	store.Account
	store.IndexSource
	s spyStore
}

func (a spyAccount) Fetch(ctx context.Context, id int64, uids []uint32, want store.Want, fn func(*store.Message) error) error {
	if want&store.WantHeader != 0 {
		a.s.c.headerFetches.Add(1)
	}
	return a.Account.Fetch(ctx, id, uids, want, func(m *store.Message) error {
		if a.s.nilHeaders {
			m.Header = nil
		}
		return fn(m)
	})
}

func (a spyAccount) OpenBody(ctx context.Context, id int64, uid uint32) (store.Body, error) {
	a.s.c.bodyOpens.Add(1)
	return a.Account.OpenBody(ctx, id, uid)
}

func (a spyAccount) SearchText(ctx context.Context, id int64, qs []store.TextQuery) (store.TextResult, error) {
	a.s.c.storeSearches.Add(1)
	if a.s.noIndex {
		return store.TextResult{}, store.ErrNoTextIndex
	}
	return a.Account.SearchText(ctx, id, qs)
}

// spyAccountOf returns user u's account behind the index in front of a
// spyStore, the index and the counts.
func spyAccountOf(t *testing.T, budget int64, nilHeaders, noIndex bool) (store.Account, *index.Indexes, *spyCounts) {
	t.Helper()
	ctx := context.Background()
	x := index.New(nil, index.Options{MemoryBudget: budget})
	backend, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Notifier: x})
	if err != nil {
		t.Fatal(err)
	}
	c := &spyCounts{}
	st := x.Wrap(spyStore{Store: backend, nilHeaders: nilHeaders, noIndex: noIndex, c: c})
	t.Cleanup(func() { st.Close() })
	if err := st.CreateUser(ctx, "u", ""); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, x, c
}

// fromAlice is the store query of SEARCH FROM alice.
func fromAlice() []store.TextQuery {
	key := &imap.SearchKey{Op: imap.SearchFrom, Str: "alice"}
	return search.TextQueries(key, search.TextLeaves(key))
}

// Messages without a stored header: read once, then left to the store's
// own index (which decided them before the cache), or, without one,
// Pending for the caller to read; never fetched again.
func TestFieldLinesWithoutHeaders(t *testing.T) {
	ctx := context.Background()
	for _, noIndex := range []bool{false, true} {
		a, x, c := spyAccountOf(t, 0, true, noIndex)
		res := appendMessages(t, a, 200, storeMsg)
		for range 3 {
			got, err := a.SearchText(ctx, res.MailboxID, fromAlice())
			if noIndex {
				if err != nil || len(got.Hits[0]) != 0 || !slices.Equal(got.Pending, res.UIDs) {
					t.Fatalf("no text index: %d hits, pending %d of %d, %v; want all pending", len(got.Hits[0]), len(got.Pending), len(res.UIDs), err)
				}
				continue
			}
			if err != nil || len(got.Hits) != 1 {
				t.Fatalf("SearchText: %+v, %v", got, err)
			}
			// The store's index answers: every message is from alice, and
			// those it has not indexed yet are pending.
			if n := len(got.Hits[0]) + len(got.Pending); n != len(res.UIDs) {
				t.Fatalf("store's index: %d hits + %d pending, want %d", len(got.Hits[0]), len(got.Pending), len(res.UIDs))
			}
		}
		if n := c.headerFetches.Load(); n != 1 {
			t.Errorf("noIndex=%v: %d header fetches in three searches, want 1", noIndex, n)
		}
		if err := index.CheckLines(x); err != nil {
			t.Error(err)
		}
	}
}

// Lines larger than expected, with no text index in the store: the fill
// keeps what fits the mailbox's share and stops; the rest stays Pending
// (read by the caller) and is not fetched again while it would not fit.
func TestFieldLinesLargerThanGuess(t *testing.T) {
	ctx := context.Background()
	const budget = 400 << 10
	a, x, c := spyAccountOf(t, budget, false, true)
	var to strings.Builder
	for i := range 40 {
		fmt.Fprintf(&to, ", Recipient Number %d <recipient%d@example.org>", i, i)
	}
	res := appendMessages(t, a, 100, func(i int) []byte {
		return fmt.Appendf(nil, "From: alice@example.org\r\nTo: bob@example.org%s\r\nSubject: s%d\r\n\r\nx\r\n", to.String(), i)
	})
	for i := range 3 {
		got, err := a.SearchText(ctx, res.MailboxID, fromAlice())
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Hits[0]) == 0 || len(got.Pending) == 0 || len(got.Hits[0])+len(got.Pending) != len(res.UIDs) {
			t.Fatalf("search %d: %d hits, %d pending of %d: want some of each, covering all", i, len(got.Hits[0]), len(got.Pending), len(res.UIDs))
		}
	}
	if n := c.headerFetches.Load(); n != 1 {
		t.Errorf("%d header fetches in three searches, want 1", n)
	}
	// At most one entry (about 4 KB here) past the share.
	if n := index.LinesBytes(x); n > index.LinesShare(x)+8<<10 || n < index.LinesShare(x)/2 {
		t.Errorf("field lines hold %d bytes; their share is %d", n, index.LinesShare(x))
	}
	if err := index.CheckLines(x); err != nil {
		t.Error(err)
	}
}

// Sessions searching a mailbox at once read its headers once.
func TestFieldLinesFilledOnce(t *testing.T) {
	ctx := context.Background()
	a, x, c := spyAccountOf(t, 0, false, false)
	res := appendMessages(t, a, 1000, storeMsg)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			got, err := a.SearchText(ctx, res.MailboxID, fromAlice())
			if err == nil && (len(got.Pending) > 0 || !slices.Equal(got.Hits[0], res.UIDs)) {
				err = fmt.Errorf("%d hits, %d pending; want all %d hits", len(got.Hits[0]), len(got.Pending), len(res.UIDs))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := c.headerFetches.Load(); n != 1 {
		t.Errorf("%d header fetches for eight concurrent searches, want 1", n)
	}
	if n := c.storeSearches.Load(); n != 0 {
		t.Errorf("%d searches of the store's own index, want 0", n)
	}
	if err := index.CheckLines(x); err != nil {
		t.Error(err)
	}
}

// A first search of a mailbox larger than the store's index is worth
// reading headers for goes to the store's index; without one (postgres)
// the index reads the headers once and answers itself.
func TestFieldLinesLargeMailbox(t *testing.T) {
	ctx := context.Background()
	for _, noIndex := range []bool{false, true} {
		a, _, c := spyAccountOf(t, 0, false, noIndex)
		res := appendMessages(t, a, 2100, storeMsg)
		for range 2 {
			if _, err := a.SearchText(ctx, res.MailboxID, fromAlice()); err != nil {
				t.Fatal(err)
			}
		}
		wantFetches, wantSearches := int64(0), int64(2)
		if noIndex {
			wantFetches, wantSearches = 1, 1
		}
		if f, s := c.headerFetches.Load(), c.storeSearches.Load(); f != wantFetches || s != wantSearches {
			t.Errorf("noIndex=%v: %d header fetches and %d searches of the store's index, want %d and %d", noIndex, f, s, wantFetches, wantSearches)
		}
	}
}

// appendMessages appends n messages (body(i) each) to a's INBOX in one
// APPEND.
func appendMessages(t *testing.T, a store.Account, n int, body func(i int) []byte) store.AppendResult {
	t.Helper()
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i].Body = body(i)
	}
	res, err := a.Append(context.Background(), "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
