package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestKeywordCache: once an account has stored a keyword in a mailbox,
// storing it again (in any spelling) sends no keyword statement and
// still writes the account-wide first spelling, which another session
// of the user set first.
func TestKeywordCache(t *testing.T) {
	ctx := context.Background()
	s, a, ct := openTraced(t, false)
	other, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}}); err != nil {
		t.Fatal(err)
	}
	inbox := inboxID(t, a)
	// Another session makes "$Later" the user's spelling.
	if _, err := other.StoreFlags(ctx, inbox, []uint32{2}, store.FlagsAdd, []string{"$Later"}, 0, false); err != nil {
		t.Fatal(err)
	}
	flagsOf := func(uid uint32, spelling string) []string {
		t.Helper()
		res, err := a.StoreFlags(ctx, inbox, []uint32{uid}, store.FlagsAdd, []string{spelling}, 0, false)
		if err != nil || len(res.Updated) != 1 {
			t.Fatalf("store %s: %+v %v", spelling, res, err)
		}
		return res.Updated[0].Flags
	}
	ct.take()
	if got := flagsOf(1, "$LATER"); !slices.Contains(got, "$Later") {
		t.Fatalf("first store: flags %v, want the user's spelling $Later", got)
	}
	if q := append(ct.sent("INTO keywords"), ct.sent("INTO mailbox_keywords")...); len(q) != 2 {
		t.Fatalf("first store of a keyword new to this account: %d keyword statements, want the lookup and the list's insert: %q", len(q), q)
	}
	ct.take()
	if got := flagsOf(2, "$later"); !slices.Contains(got, "$Later") || slices.Contains(got, "$later") {
		t.Fatalf("second store: flags %v, want $Later alone", got)
	}
	if q := append(ct.sent("INTO keywords"), ct.sent("INTO mailbox_keywords")...); len(q) != 0 {
		t.Fatalf("second store of a known keyword sent keyword statements: %q", q)
	}
	// The mailbox's list holds it, as the database says.
	kws, err := mailboxKeywords(ctx, s.pool, inbox)
	if err != nil || !slices.Equal(kws, []string{"$Later"}) {
		t.Fatalf("INBOX keywords %v %v, want [$Later]", kws, err)
	}
}

// TestKeywordCacheLearnsOnlyCommitted: a write that fails teaches the
// cache nothing, so a keyword it looked up is asked for again.
func TestKeywordCacheLearnsOnlyCommitted(t *testing.T) {
	var c keywordCache
	seen := keywordsSeen{}
	seen.spelling("$x", "$X")
	seen.listed(7, []string{"$x"})
	if _, ok := c.spellings(0, []string{"$x"}); ok {
		t.Fatal("an empty cache knows $x")
	}
	c.learn(0, 1, &seen) // the connection broke while the write ran
	if _, ok := c.spellings(1, []string{"$x"}); ok {
		t.Fatal("learned from a write that spanned a break")
	}
	c.learn(0, 0, &seen)
	if got, ok := c.spellings(0, []string{"$x", "$X"}); !ok || !slices.Equal(got, []string{"$X", "$X"}) {
		t.Fatalf("spellings %v %v", got, ok)
	}
	if !c.listed(0, 7, []string{"$x"}) || c.listed(0, 7, []string{"$x", "$y"}) || c.listed(0, 8, []string{"$x"}) {
		t.Fatal("listed answers wrong")
	}
	if c.listed(1, 7, []string{"$x"}) {
		t.Fatal("the cache kept what it learned before a break")
	}
	for i := range maxCachedKeywords + 10 {
		var s keywordsSeen
		s.spelling(string(rune('a'+i%26))+string(rune(i)), "k")
		c.learn(1, 1, &s)
	}
	if c.n > maxCachedKeywords {
		t.Fatalf("cache holds %d entries, bound %d", c.n, maxCachedKeywords)
	}
}

// TestKeywordCacheForgetsAtBreak: when the Store's listening connection
// breaks (the database restarted, and may have lost commits not yet on
// its disk), an account asks the database for keywords again.
func TestKeywordCacheForgetsAtBreak(t *testing.T) {
	ctx := context.Background()
	s, a, ct := openTraced(t, true)
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}}); err != nil {
		t.Fatal(err)
	}
	inbox := inboxID(t, a)
	stored := func() int {
		t.Helper()
		ct.take()
		if _, err := a.StoreFlags(ctx, inbox, []uint32{1}, store.FlagsAdd, []string{"$Work"}, 0, false); err != nil {
			t.Fatal(err)
		}
		return len(ct.sent("INTO keywords")) + len(ct.sent("INTO mailbox_keywords"))
	}
	if n := stored(); n != 2 {
		t.Fatalf("first store: %d keyword statements, want 2", n)
	}
	if n := stored(); n != 0 {
		t.Fatalf("second store: %d keyword statements, want 0", n)
	}
	before := s.breaks.Load()
	if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN `+notifyChannel+`' AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.breaks.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the listening connection did not break")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := stored(); n != 2 {
		t.Fatalf("store after the break: %d keyword statements, want 2 (asked again)", n)
	}
}
