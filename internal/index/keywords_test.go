package index_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// appendKeywords: an APPEND with a keyword new to the mailbox grows the
// mailbox's keyword list in the index it commits through (the commit's
// own delta does not carry the list: the index catches up), and an
// APPEND with keywords already listed leaves the list whole, on st (the
// index in front of a store).
func appendKeywords(t *testing.T, st store.Store) {
	ctx := context.Background()
	if err := st.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	appendWith := func(i int, flags ...string) {
		t.Helper()
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i), Flags: flags}}); err != nil {
			t.Fatal(err)
		}
	}
	appendWith(1, "$Old")
	info, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, want ...string) {
		t.Helper()
		snap, _, err := a.Snapshot(ctx, info.ID) // loads the index the first time
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(snap.Keywords, want) {
			t.Errorf("%s: keywords %q, want %q", step, snap.Keywords, want)
		}
	}
	check("loaded", "$Old")
	appendWith(2, "$Old")
	check("after an APPEND with a listed keyword", "$Old")
	appendWith(3, "$New", "$Old")
	check("after an APPEND with a new keyword", "$New", "$Old")
	appendWith(4, "$New")
	check("after an APPEND with the keyword listed since", "$New", "$Old")
}

func TestAppendKeywords(t *testing.T) {
	st, _ := openIndexed(t, t.TempDir(), nil, index.Options{})
	defer st.Close()
	appendKeywords(t, st)
}

func TestAppendKeywordsPostgres(t *testing.T) {
	x := index.New(nil, index.Options{})
	pg, err := postgres.Open(context.Background(), pgtest.NewDatabase(t), postgres.Options{Notifier: x})
	if err != nil {
		t.Fatal(err)
	}
	st := x.Wrap(pg)
	defer st.Close()
	appendKeywords(t, st)
}
