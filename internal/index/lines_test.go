package index_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
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
