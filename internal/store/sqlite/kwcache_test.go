package sqlite

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// A keyword recorded by a write that was then rolled back must not be
// remembered: the next write records it again, with its own spelling, and
// the mailbox's keyword list grows then.
func TestKeywordCacheSkipsRolledBack(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	app, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nhi\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	undo := errors.New("undo")
	err = a.lazyWrite(ctx, "test", func(w *wtx) error {
		kws, err := w.canonKeywords([]string{"$Foo"})
		if err != nil {
			return err
		}
		if _, err := w.addMailboxKeywords(app.MailboxID, kws); err != nil {
			return err
		}
		return undo
	})
	if !errors.Is(err, undo) {
		t.Fatalf("write: %v, want %v", err, undo)
	}
	if n, ok := a.u.keywords.name("$foo"); ok {
		t.Fatalf("cache holds %q from a rolled-back write", n)
	}

	res, err := a.StoreFlags(ctx, app.MailboxID, app.UIDs, store.FlagsAdd, []string{"$FOO"}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Keywords, []string{"$FOO"}) {
		t.Fatalf("mailbox keywords after the first committed STORE: %q, want [$FOO]", res.Keywords)
	}
	if got := res.Updated[0].Flags; !slices.Contains(got, "$FOO") {
		t.Fatalf("flags %q, want $FOO", got)
	}
	if n, _ := a.u.keywords.name("$foo"); n != "$FOO" {
		t.Fatalf("cache spelling %q after commit, want $FOO", n)
	}

	// From the cache now: the account's spelling, and no growth reported.
	res, err = a.StoreFlags(ctx, app.MailboxID, app.UIDs, store.FlagsReplace, []string{"$foo"}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Keywords != nil {
		t.Fatalf("mailbox keywords reported as grown: %q", res.Keywords)
	}
	if got := res.Updated[0].Flags; !slices.Equal(got, []string{"$FOO"}) {
		t.Fatalf("flags %q, want [$FOO]", got)
	}
}

// The cache stops growing at keywordCacheMax entries per map.
func TestKeywordCacheBounded(t *testing.T) {
	var c keywordCache
	seen := keywordsSeen{names: map[string]string{}}
	for i := range keywordCacheMax + 100 {
		k := "k" + itoa(int64(i))
		seen.names[k] = k
		seen.listed = append(seen.listed, mailboxKeyword{mailbox: 1, folded: k})
	}
	c.learn(&seen)
	if len(c.names) != keywordCacheMax || len(c.listed) != keywordCacheMax {
		t.Fatalf("cache sizes %d, %d; want %d each", len(c.names), len(c.listed), keywordCacheMax)
	}
}
