package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// searchSetup makes user u with the given INBOX messages, all indexed,
// and returns the account and the INBOX id.
func searchSetup(t *testing.T, s *Store, bodies []string) (store.Account, int64) {
	t.Helper()
	ctx := context.Background()
	a := newUser(t, s)
	for _, b := range bodies {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(b)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return a, inbox.ID
}

// searchCounting runs one query and returns its hits and how many stored
// texts it compared (tern_contains calls).
func searchCounting(t *testing.T, a store.Account, mailbox int64, q store.TextQuery) ([]uint32, int64) {
	t.Helper()
	before := containsCalls.Load()
	res, err := a.SearchText(context.Background(), mailbox, []store.TextQuery{q})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pending) != 0 {
		t.Fatalf("pending %v", res.Pending)
	}
	return res.Hits[0], containsCalls.Load() - before
}

// TestSearchTextWordProof: a needle that is a whole word of a message's
// body is decided by the word index without reading the stored text;
// the other candidates (the needle inside a longer word, a text that is
// not UTF-8, the needle in the header only) are still compared, so the
// hits are exact.
func TestSearchTextWordProof(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	var bodies []string
	for i := range 20 { // UIDs 1-20: the word, proven
		bodies = append(bodies, fmt.Sprintf("Subject: w%d\r\n\r\nthe halfmoon rises %d\r\n", i, i))
	}
	bodies = append(bodies,
		"Subject: x\r\n\r\nHALFMOON, loud\r\n",                                                  // 21: folded, a word: proven
		"Subject: x\r\n\r\nhalfmoons tonight\r\n",                                               // 22: inside a longer word: compared
		"Subject: x\r\n\r\nahalfmoon_b\r\n",                                                     // 23: inside a longer word: compared
		"Subject: x\r\n\r\nhalf moon\r\n",                                                       // 24: no candidate
		"Subject: halfmoon\r\n\r\nnothing\r\n",                                                  // 25: header only: TEXT, not BODY
		"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe halfmoon\r\n",    // 26: not UTF-8: compared
		"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncafé halfmoon§ naïve\r\n", // 27: a word followed by a non-ASCII byte: compared
	)
	a, inbox := searchSetup(t, s, bodies)
	var words []uint32
	for uid := uint32(1); uid <= 21; uid++ {
		words = append(words, uid)
	}
	for _, c := range []struct {
		q        store.TextQuery
		want     []uint32
		maxReads int64
	}{
		{store.TextQuery{Fields: store.TextBody, Needle: []byte("halfmoon")}, append(slices.Clone(words), 22, 23, 26, 27), 6},
		{store.TextQuery{Fields: store.TextHeader | store.TextBody | store.TextMIME, Needle: []byte("halfmoon")}, append(slices.Clone(words), 22, 23, 25, 26, 27), 12},
		{store.TextQuery{Fields: store.TextBody, Needle: search.Fold("naïve")}, []uint32{27}, 1},
		{store.TextQuery{Fields: store.TextBody, Needle: search.Fold("halfmoon§")}, []uint32{27}, 3},
		{store.TextQuery{Fields: store.TextBody, Needle: []byte("rises")}, words[:20], 1}, // 26, not UTF-8
	} {
		got, reads := searchCounting(t, a, inbox, c.q)
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: hits %v, want %v", c.q.Needle, got, c.want)
		}
		if reads > c.maxReads {
			t.Errorf("%q: %d stored texts compared, want at most %d", c.q.Needle, reads, c.maxReads)
		}
	}
}

// TestSearchTextHeaderCandidates: a header key takes its candidates from
// the header index, not from every message whose body holds the needle.
func TestSearchTextHeaderCandidates(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	var bodies []string
	for i := range 30 {
		bodies = append(bodies, fmt.Sprintf("From: a%d@example.org\r\nSubject: s%d\r\n\r\nask kowalski about it\r\n", i, i))
	}
	bodies = append(bodies, "From: Jan Kowalski <jan@example.org>\r\nSubject: hi\r\n\r\nhello\r\n",
		"From: b@example.org\r\nSubject: kowalski's report\r\n\r\nhello\r\n")
	a, inbox := searchSetup(t, s, bodies)
	got, reads := searchCounting(t, a, inbox, store.TextQuery{Fields: store.TextHeader | store.TextAddress, Needle: []byte("kowalski")})
	if !slices.Equal(got, []uint32{31, 32}) {
		t.Errorf("FROM kowalski: hits %v, want [31 32]", got)
	}
	if reads > 4 {
		t.Errorf("FROM kowalski: %d stored texts compared, want at most 4 (2 candidates, 2 columns)", reads)
	}
	res, err := a.SearchText(context.Background(), inbox, []store.TextQuery{{Fields: store.TextHeader | store.TextAddress, Needle: []byte("kowalsky"), Fuzzy: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Hits[0], []uint32{31, 32}) {
		t.Errorf("FUZZY FROM kowalsky: hits %v, want [31 32]", res.Hits[0])
	}
}

// TestTextSideIndexMigration: opening a mail.db of schema version 11
// (a full-text index without its side indexes, rows deleted by the
// deleting transaction) fills them from the stored text; searches use
// them and expunges leave their rows to the indexer (schema 13).
func TestTextSideIndexMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	a, _ := searchSetup(t, s, []string{
		"From: Jan Kowalski <jan@example.org>\r\nSubject: one\r\n\r\nthe halfmoon\r\n",
		"From: b@example.org\r\nSubject: two\r\n\r\nhalfmoons\r\n",
		"From: c@example.org\r\nSubject: three\r\n\r\nkowalski\r\n",
	})
	a.Close()
	s.Close()
	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER contents_fts_deferred`, `DROP TRIGGER contents_fts_reused`, `DROP TABLE fts_gone`,
		`DROP TABLE fts_head`, `DROP TABLE fts_words`,
		`CREATE TRIGGER contents_fts_gone AFTER DELETE ON contents BEGIN DELETE FROM fts WHERE rowid = OLD.id; DELETE FROM fts_pending WHERE content_id = OLD.id; DELETE FROM fts_weak WHERE content_id = OLD.id; END`,
		`PRAGMA user_version = 11`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s = openTest(t, dir, nil)
	defer s.Close()
	wantFTS(t, s, 3, 0, 3) // side indexes checked too
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	inbox, _ := a.Mailbox(ctx, "INBOX")
	// Both proven by the word vocabulary (filled by the migration to 15).
	if got, reads := searchCounting(t, a, inbox.ID, store.TextQuery{Fields: store.TextBody, Needle: []byte("halfmoon")}); !slices.Equal(got, []uint32{1, 2}) || reads != 0 {
		t.Errorf("BODY halfmoon: hits %v after %d reads, want [1 2] after 0", got, reads)
	}
	if got, reads := searchCounting(t, a, inbox.ID, store.TextQuery{Fields: store.TextHeader | store.TextAddress, Needle: []byte("kowalski")}); !slices.Equal(got, []uint32{1}) || reads > 2 {
		t.Errorf("FROM kowalski: hits %v after %d reads, want [1] after at most 2", got, reads)
	}
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{1}, false); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 3, 0, 2) // the rows wait for the indexer (fts_gone)
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 2, 0, 2)
}

// TestQueryIntList: group_concat lists are parsed exactly; anything else
// (an empty item, a number over the limit, another character) is an
// error, never a wrong number.
func TestQueryIntList(t *testing.T) {
	db, err := sqldb.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		list  any
		limit uint64
		want  []uint64
		ok    bool
	}{
		{nil, 10, nil, true},
		{"", 10, nil, true},
		{"7", 10, []uint64{7}, true},
		{"1,2,10", 10, []uint64{1, 2, 10}, true},
		{"11", 10, nil, false},
		{"4294967295", 1<<32 - 1, []uint64{4294967295}, true},
		{"4294967296", 1<<32 - 1, nil, false},
		{"99999999999999999999999", 1 << 62, nil, false},
		{"1,,2", 10, nil, false},
		{"1,", 10, nil, false},
		{",1", 10, nil, false},
		{"1;2", 10, nil, false},
	} {
		var got []uint64
		err := queryIntList(context.Background(), db, c.limit, func(n uint64) { got = append(got, n) }, `SELECT ?`, c.list)
		if (err == nil) != c.ok || c.ok && !slices.Equal(got, c.want) {
			t.Errorf("%v (limit %d): %v, %v; want %v, ok %v", c.list, c.limit, got, err, c.want, c.ok)
		}
	}
}

// TestTextIndexHeaderUnindexed: fts indexes the body and MIME columns
// only (schema version 14; the header's trigrams are in fts_head), so a
// body key no longer proposes, and reads, messages that hold the needle
// only in their header, while TEXT still finds them. A mail.db of
// version 13 (every fts column indexed) is rebuilt by the migration.
func TestTextIndexHeaderUnindexed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	a, _ := searchSetup(t, s, []string{
		"From: Jan Kowalski <jan@example.org>\r\nSubject: one\r\n\r\nthe halfmoon\r\n",
		"From: b@example.org\r\nSubject: two\r\n\r\nhalfmoons\r\n",
		"From: c@example.org\r\nSubject: three\r\n\r\nkowalski was here\r\n",
	})
	check := func(when string) {
		t.Helper()
		inbox, err := a.Mailbox(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			q     store.TextQuery
			want  []uint32
			reads int64
		}{
			// Inside a word: proven by the word vocabulary (schema 15),
			// no text read.
			{store.TextQuery{Fields: store.TextBody, Needle: []byte("owalsk")}, []uint32{3}, 0},
			{store.TextQuery{Fields: store.TextBody, Needle: []byte("kowalski")}, []uint32{3}, 0},
			{store.TextQuery{Fields: store.TextHeader | store.TextAddress | store.TextBody | store.TextMIME, Needle: []byte("owalsk")}, []uint32{1, 3}, 4},
			{store.TextQuery{Fields: store.TextHeader | store.TextAddress, Needle: []byte("owalsk")}, []uint32{1}, 1},
		} {
			got, reads := searchCounting(t, a, inbox.ID, c.q)
			if !slices.Equal(got, c.want) || reads != c.reads {
				t.Errorf("%s: fields %b %q: hits %v after %d reads, want %v after %d", when, c.q.Fields, c.q.Needle, got, reads, c.want, c.reads)
			}
		}
	}
	check("new")
	a.Close()
	s.Close()

	// Back to version 13's fts, every column indexed and its text kept
	// by FTS5.
	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER contents_fts_deferred`, `DROP TRIGGER contents_fts_reused`,
		`CREATE VIRTUAL TABLE fts_v13 USING fts5(hdr, addr, body, mime, tokenize='trigram case_sensitive 1', detail=none)`,
		`INSERT INTO fts_v13(rowid, hdr, addr, body, mime) SELECT id, hdr, ` + addrOf + `, ` + unpackFunc + `(body), mime FROM fts_text f`, `DROP TABLE fts_fields`,
		`DROP TABLE fts`, `DROP TABLE fts_text`, `ALTER TABLE fts_v13 RENAME TO fts`,
		`PRAGMA user_version = 13`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var old int
	match, _ := trigramQuery([]byte("owalsk"))
	if err := db.QueryRow(`SELECT COUNT(*) FROM fts WHERE fts MATCH ?`, match).Scan(&old); err != nil || old != 2 {
		t.Fatalf("version 13 fts: %d rows hold owalsk (%v), want 2", old, err)
	}
	db.Close()

	s = openTest(t, dir, nil)
	defer s.Close()
	wantFTS(t, s, 3, 0, 3)
	var ftsSQL string
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE name = 'fts'`).Scan(&ftsSQL); err != nil {
		t.Fatal(err)
	}
	if want := "fts5(body, mime, content=''"; !strings.Contains(ftsSQL, want) {
		t.Fatalf("fts after the migration: %s; want %s", ftsSQL, want)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check after the migration = %q, %v; want consistent", p, err)
	}
	if a, err = s.Account(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	check("migrated")
	// The triggers are back: an expunge lists the rows for the indexer.
	inbox, _ := a.Mailbox(ctx, "INBOX")
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{1}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 2, 0, 2)
}
