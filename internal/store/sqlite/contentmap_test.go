package sqlite

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestSearchTextContentMap: the full-text search maps content ids to
// UIDs through a cached map of the mailbox (contentMap) that follows
// appends, copies within the mailbox (two UIDs, one content), flag
// changes, expunges and moves without reading the mailbox again. Every
// answer is checked against the messages the mailbox holds.
func TestSearchTextContentMap(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	msg := func(i int) string { return fmt.Sprintf("Subject: m%d\r\n\r\nthe lanternfish number %d\r\n", i, i) }
	a, inbox := searchSetup(t, s, []string{msg(1), msg(2), msg(3)})
	search := func(box int64, want ...uint32) {
		t.Helper()
		res, err := a.SearchText(ctx, box, []store.TextQuery{
			{Fields: store.TextBody, Needle: []byte("lanternfish")}, // proven by the word index
			{Fields: store.TextBody, Needle: []byte("ternfis")},     // checked against the text
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, hits := range res.Hits {
			if got := slices.Concat(hits, res.Pending); !slices.Equal(sortedUIDs(got), want) {
				t.Fatalf("query %d: hits %v + pending %v, want %v", i, hits, res.Pending, want)
			}
		}
	}
	index := func() {
		t.Helper()
		if err := s.IndexText(ctx, "u", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	reads := contentMapReads.Load()
	search(inbox, 1, 2, 3)
	if n := contentMapReads.Load() - reads; n != 1 {
		t.Fatalf("first search read the mailbox %d times, want 1", n)
	}
	reads = contentMapReads.Load()

	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(msg(4))}}); err != nil {
		t.Fatal(err)
	}
	search(inbox, 1, 2, 3, 4) // 4 is queued
	index()
	search(inbox, 1, 2, 3, 4)
	if _, err := a.Copy(ctx, inbox, []uint32{2}, "INBOX"); err != nil { // UID 5, content of 2
		t.Fatal(err)
	}
	search(inbox, 1, 2, 3, 4, 5)
	if _, err := a.StoreFlags(ctx, inbox, []uint32{1}, store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	search(inbox, 1, 2, 3, 4, 5)
	if _, err := a.Expunge(ctx, inbox, []uint32{2, 3}, false); err != nil {
		t.Fatal(err)
	}
	search(inbox, 1, 4, 5) // content 2 stays with UID 5
	if n := contentMapReads.Load() - reads; n != 0 {
		t.Errorf("the searches after changes read the mailbox %d times, want 0 (caught up)", n)
	}

	// Another mailbox: its own map; moving messages there expunges them here.
	if err := a.CreateMailbox(ctx, "Box", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateMailbox(ctx, "Box/Child", ""); err != nil {
		t.Fatal(err)
	}
	box, err := a.Mailbox(ctx, "Box")
	if err != nil {
		t.Fatal(err)
	}
	search(box.ID)
	if _, err := a.Move(ctx, inbox, []uint32{1, 5}, "Box"); err != nil {
		t.Fatal(err)
	}
	search(inbox, 4)
	search(box.ID, 1, 2)
	if _, err := a.Append(ctx, "Box", []store.NewMessage{{Body: []byte(msg(6))}}); err != nil {
		t.Fatal(err)
	}
	index()
	search(box.ID, 1, 2, 3)
	if _, err := a.Expunge(ctx, box.ID, []uint32{1}, false); err != nil {
		t.Fatal(err)
	}
	search(box.ID, 2, 3)
	search(inbox, 4)
}

func sortedUIDs(u []uint32) []uint32 {
	u = slices.Clone(u)
	slices.Sort(u)
	return u
}
