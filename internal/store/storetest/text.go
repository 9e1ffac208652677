package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
)

// testSearchText: whatever a backend's full-text index holds, SearchText
// names every message either as pending (the caller reads it) or, when
// indexed, among the hits exactly when its text contains the needle;
// copies and expunges are reflected at once. A one-field address query
// (store.TextFrom...) names exactly the messages with such a field
// holding the needle, not those with it elsewhere in the header; SUBJECT
// matches the decoded subject, not its encoding.
func testSearchText(t *testing.T, e *env) {
	a := e.user("alice")
	bodies := [][]byte{
		[]byte("From: Zoë Müller <zoe@example.org>\r\nSubject: =?UTF-8?Q?Stra=C3=9Fe?= plan\r\n\r\nthe budget report\r\n"),
		[]byte("From: bob@example.org\r\nSubject: lunch\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 at noon\r\n"),
		[]byte("From: carol@example.org\r\nSubject: other\r\n\r\nnothing here\r\n"),
	}
	for _, b := range bodies {
		if _, err := a.Append(e.ctx, "INBOX", []store.NewMessage{{Body: b}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox := mbox(t, a, "INBOX")
	if err := a.CreateMailbox(e.ctx, "Other", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Copy(e.ctx, inbox.ID, []uint32{1, 2}, "Other"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(e.ctx, inbox.ID, []uint32{2}, false); err != nil {
		t.Fatal(err)
	}
	other := mbox(t, a, "Other")
	qs := []store.TextQuery{
		{Fields: store.TextBody, Needle: search.Fold("budget")},
		{Fields: store.TextBody, Needle: search.Fold("café")},
		{Fields: store.TextHeader, Needle: search.Fold("straße")},
		{Fields: store.TextHeader | store.TextAddress, Needle: search.Fold("zoë müller")},
		{Fields: store.TextBody, Needle: search.Fold("e")},
		{Fields: store.TextBody | store.TextHeader, Needle: search.Fold("nowhere-at-all")},
		// Fuzzy (RFC 6203): 5 of the 10 grams of "budgte reprot" are in
		// "the budget report".
		{Fields: store.TextBody, Needle: search.Fold("budgte reprot"), Fuzzy: true},
		// One address field, decided field by field (needles folded).
		{Fields: store.TextFrom, Needle: search.Fold("Zoë Müller")},
		{Fields: store.TextFrom, Needle: search.Fold("BOB@example")},
		{Fields: store.TextFrom, Needle: search.Fold("lunch")},
		{Fields: store.TextTo, Needle: search.Fold("example")},
		{Fields: store.TextFrom, Needle: []byte{}},
		{Fields: store.TextSubject, Needle: search.Fold("Stra=C3=9F")},
		{Fields: store.TextSubject, Needle: search.Fold("straße plan")},
	}
	indexed := false // every message indexed: none may be pending
	check := func(id int64, want [][]uint32, all []uint32) {
		t.Helper()
		res, err := a.SearchText(e.ctx, id, qs)
		if errors.Is(err, store.ErrNoTextIndex) {
			t.Skip("backend has no full-text index")
		}
		if err != nil {
			t.Fatal(err)
		}
		if indexed && len(res.Pending) > 0 {
			t.Fatalf("mailbox %d: pending %v after indexing", id, res.Pending)
		}
		for i, w := range want {
			if qs[i].Fuzzy && (len(res.Scores) <= i || len(res.Scores[i]) != len(res.Hits[i]) || slices.Contains(res.Scores[i], 0)) {
				t.Errorf("mailbox %d, fuzzy query %q: hits %v, scores %v", id, qs[i].Needle, res.Hits[i], res.Scores)
			}
			for _, uid := range all {
				if slices.Contains(res.Pending, uid) {
					continue
				}
				if got := slices.Contains(res.Hits[i], uid); got != slices.Contains(w, uid) {
					t.Errorf("mailbox %d, query %q, UID %d: hit %v, want %v (pending %v)", id, qs[i].Needle, uid, got, !got, res.Pending)
				}
			}
		}
	}
	check(inbox.ID, [][]uint32{{1}, {}, {1}, {1}, {1, 3}, {}, {1}, {1}, {}, {}, {}, {1, 3}, {}, {1}}, []uint32{1, 2, 3})
	check(other.ID, [][]uint32{{1}, {2}, {1}, {1}, {1}, {}, {1}, {1}, {2}, {}, {}, {1, 2}, {}, {1}}, []uint32{1, 2})
	e.reopen()
	a = e.account("alice")
	check(inbox.ID, [][]uint32{{1}, {}, {1}, {1}, {1, 3}, {}, {1}, {1}, {}, {}, {}, {1, 3}, {}, {1}}, []uint32{1, 2, 3})
	if ix, ok := e.st.(textIndexer); ok {
		if err := ix.IndexText(e.ctx, "alice", false, nil); err != nil {
			t.Fatal(err)
		}
		indexed = true
		check(inbox.ID, [][]uint32{{1}, {}, {1}, {1}, {1, 3}, {}, {1}, {1}, {}, {}, {}, {1, 3}, {}, {1}}, []uint32{1, 3})
		check(other.ID, [][]uint32{{1}, {2}, {1}, {1}, {1}, {}, {1}, {1}, {2}, {}, {}, {1, 2}, {}, {1}}, []uint32{1, 2})
	}
}

// textIndexer is a store that indexes a user's text on demand (the
// sqlite store): the suite indexes, so that the hits are checked rather
// than the messages left pending.
type textIndexer interface {
	IndexText(ctx context.Context, user string, rebuild bool, progress func(done, left int)) error
}

// testSavePreviews: SavePreviews keeps a preview only where none is
// stored: a message delivered with one keeps it, a missing UID and
// another user's mailbox are left alone.
func testSavePreviews(t *testing.T, e *env) {
	a := e.user("alice")
	b := e.user("bob")
	msg := []byte("Subject: x\r\n\r\nthe real text\r\n")
	for _, acct := range []store.Account{a, b} {
		if _, err := acct.Append(e.ctx, "INBOX", []store.NewMessage{{Body: msg}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, bobInbox := mbox(t, a, "INBOX"), mbox(t, b, "INBOX")
	if err := a.SavePreviews(e.ctx, inbox.ID, map[uint32]string{1: "other", 99: "gone"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SavePreviews(e.ctx, bobInbox.ID, map[uint32]string{1: "not yours"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		acct store.Account
		id   int64
	}{{a, inbox.ID}, {b, bobInbox.ID}} {
		err := c.acct.Fetch(e.ctx, c.id, []uint32{1}, store.WantPreview, func(m *store.Message) error {
			if m.Preview == nil || *m.Preview != "the real text" {
				t.Errorf("%s: preview %v", c.acct.User(), m.Preview)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
