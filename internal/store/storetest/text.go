package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// testSearchText: whatever a backend's full-text index holds, SearchText
// names every message either as pending (the caller reads it) or, when
// indexed, among the hits exactly when its text contains the needle;
// copies and expunges are reflected at once.
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
		{Fields: store.TextBody, Needle: []byte("budget")},
		{Fields: store.TextBody, Needle: []byte("café")},
		{Fields: store.TextHeader, Needle: []byte("straße")},
		{Fields: store.TextHeader | store.TextAddress, Needle: []byte("zoë müller")},
		{Fields: store.TextBody, Needle: []byte("e")},
		{Fields: store.TextBody | store.TextHeader, Needle: []byte("nowhere-at-all")},
	}
	check := func(id int64, want [][]uint32, all []uint32) {
		t.Helper()
		res, err := a.SearchText(e.ctx, id, qs)
		if errors.Is(err, store.ErrNoTextIndex) {
			t.Skip("backend has no full-text index")
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
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
	check(inbox.ID, [][]uint32{{1}, {}, {1}, {1}, {1, 3}, {}}, []uint32{1, 2, 3})
	check(other.ID, [][]uint32{{1}, {2}, {1}, {1}, {1, 2}, {}}, []uint32{1, 2})
	e.reopen()
	a = e.account("alice")
	check(inbox.ID, [][]uint32{{1}, {}, {1}, {1}, {1, 3}, {}}, []uint32{1, 2, 3})
}
