package sqlite

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// vocabBodies: the needle "halfmoon" as a word, inside longer tokens
// (ASCII and not), folded, split, in the header only, and in a text that
// is not UTF-8 (a weak row, never proven by its words).
var vocabBodies = []string{
	"Subject: a\r\n\r\nthe halfmoon rises\r\n",                                              // 1
	"Subject: b\r\n\r\nhalfmoons tonight\r\n",                                               // 2
	"Subject: c\r\n\r\nahalfmoon_b\r\n",                                                     // 3
	"Subject: d\r\n\r\nHALFMOON, loud\r\n",                                                  // 4
	"Subject: e\r\n\r\nhalf moon\r\n",                                                       // 5
	"Subject: halfmoon\r\n\r\nnothing\r\n",                                                  // 6
	"Subject: g\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe halfmoon\r\n",    // 7
	"Subject: h\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncafé halfmoon§ naïve\r\n", // 8
	// Tokens with characters strconv would escape and JSON must not.
	"Subject: i\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\U000E0001x\U0001F600halfmoon\u2028z\r\n", // 9
}

// TestBodyByVocabulary: BODY of a needle made of word characters is
// answered from the word vocabulary, exactly: every UTF-8 row holding it
// (as a word or inside one) without reading its text, the weak row by
// its text; a needle that is not all word characters goes the trigram
// way, with the same answer as before.
func TestBodyByVocabulary(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	a, inbox := searchSetup(t, s, vocabBodies)
	checkVocabSearches(t, a, inbox)
}

func checkVocabSearches(t *testing.T, a store.Account, inbox int64) {
	t.Helper()
	for _, c := range []struct {
		needle string
		want   []uint32
		reads  int64
	}{
		{"halfmoon", []uint32{1, 2, 3, 4, 7, 8, 9}, 1}, // only the weak row 7 is read
		{"alfmoo", []uint32{1, 2, 3, 4, 7, 8, 9}, 1},
		{"naïve", []uint32{8}, 1},
		{"zzqxw", nil, 1},
		{"half moon", []uint32{5}, -1}, // a space: trigram candidates, compared
	} {
		got, reads := searchCounting(t, a, inbox, store.TextQuery{Fields: store.TextBody, Needle: search.Fold(c.needle)})
		if !slices.Equal(got, c.want) {
			t.Errorf("BODY %q: hits %v, want %v", c.needle, got, c.want)
		}
		if c.reads >= 0 && reads != c.reads {
			t.Errorf("BODY %q: %d stored texts read, want %d", c.needle, reads, c.reads)
		}
	}
}

// TestVocabularyMigrationAndCheck: a mail.db of schema version 14 (no
// vocabulary) gets it filled from fts_words when opened; tern check finds
// a token missing from it, --repair puts it back.
func TestVocabularyMigrationAndCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	a, _ := searchSetup(t, s, vocabBodies)
	a.Close()
	s.Close()
	execMailDB(t, dir, `DROP TRIGGER fts_vocab_added`, `DROP TABLE fts_vocab_tri`, `DROP TABLE fts_vocab`, `PRAGMA user_version = 14`)

	s = openTest(t, dir, nil)
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	checkVocabSearches(t, a, inbox.ID)
	if problems, err := s.Check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("check after migration: %v, %v", problems, err)
	}
	a.Close()
	s.Close()

	// A token lost from the vocabulary (its trigram row left behind).
	execMailDB(t, dir, `DELETE FROM fts_vocab WHERE term = 'halfmoons'`)
	s = openTest(t, dir, nil)
	defer s.Close()
	problems, err := s.Check(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(problems, "\n")
	if !strings.Contains(joined, `"halfmoons"`) || !strings.Contains(joined, "word vocabulary index damaged") {
		t.Fatalf("check found %q, want the missing token and the damaged trigram index", problems)
	}
	if problems, err := s.Check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("check after repair: %v, %v", problems, err)
	}
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	checkVocabSearches(t, a, inbox.ID)
}

// TestWordTokensMatchFTS5: addWordTokens gives exactly the tokens FTS5's
// ascii tokenizer (fts_words) indexes, for random UTF-8 texts of word
// and separator characters: a token missing from the vocabulary would
// lose hits.
func TestWordTokensMatchFTS5(t *testing.T) {
	db, err := sqldb.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE VIRTUAL TABLE w USING fts5(body, content='', tokenize='ascii', detail=none)`,
		`CREATE VIRTUAL TABLE wv USING fts5vocab(w, row)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	pieces := []string{"a", "Z", "9", "_", " ", "-", "é", "ß", "日", "\x00", "\t", "§", "AbC", "x1", ".", "'", "\"", "\U0001F600"}
	r := uint64(7)
	for i := range 300 {
		var b strings.Builder
		for range 1 + i%40 {
			r = r*6364136223846793005 + 1442695040888963407
			b.WriteString(pieces[(r>>33)%uint64(len(pieces))])
		}
		text := b.String()
		if _, err := db.Exec(`INSERT INTO w(w) VALUES('delete-all')`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO w(rowid, body) VALUES(1, ?)`, text); err != nil {
			t.Fatal(err)
		}
		var fromFTS []string
		rows, err := db.Query(`SELECT term FROM wv ORDER BY term`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var term string
			if err := rows.Scan(&term); err != nil {
				t.Fatal(err)
			}
			fromFTS = append(fromFTS, term)
		}
		rows.Close()
		words := map[string]struct{}{}
		addWordTokens(words, []byte(text))
		ours := slices.Sorted(maps.Keys(words))
		if ours == nil {
			ours = []string{}
		}
		if fromFTS == nil {
			fromFTS = []string{}
		}
		if !slices.Equal(ours, fromFTS) {
			t.Fatalf("text %q: wordTokens %q, FTS5 %q", text, ours, fromFTS)
		}
	}
}

// TestVocabularyLongWords: FTS5 keeps only the first 32,768 bytes of a
// token, so a row with a longer token is weak (compared by its text):
// the needle found past the cut, and not found in rows that only share
// the cut part; a schema-14 database gets such rows marked weak by the
// migration, and tern check finds (and --repair marks) one that is not.
func TestVocabularyLongWords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	long := strings.Repeat("a", maxWordToken+100)
	a, inbox := searchSetup(t, s, []string{
		"Subject: 1\r\n\r\n" + long + "bcd\r\n",
		"Subject: 2\r\n\r\n" + long + "xyz\r\n",
		"Subject: 3\r\n\r\n" + long + "\r\n",
		"Subject: 4\r\n\r\nshort bcd\r\n",
	})
	check := func(when string, a store.Account, inbox int64) {
		t.Helper()
		for _, c := range []struct {
			needle string
			want   []uint32
		}{
			{"bcd", []uint32{1, 4}},
			{"aaabcd", []uint32{1}},
			{"aaaxyz", []uint32{2}},
			{"aaaa", []uint32{1, 2, 3}},
			{"short", []uint32{4}},
		} {
			got, _ := searchCounting(t, a, inbox, store.TextQuery{Fields: store.TextBody, Needle: []byte(c.needle)})
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: BODY %q: hits %v, want %v", when, c.needle, got, c.want)
			}
		}
	}
	check("new", a, inbox)
	if problems, err := s.Check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("check: %v, %v", problems, err)
	}
	a.Close()
	s.Close()

	// Schema 14, before weak long words.
	execMailDB(t, dir, `DROP TRIGGER fts_vocab_added`, `DROP TABLE fts_vocab_tri`, `DROP TABLE fts_vocab`, `DELETE FROM fts_weak`, `PRAGMA user_version = 14`)
	s = openTest(t, dir, nil)
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	check("migrated", a, inbox)
	if problems, err := s.Check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("check after migration: %v, %v", problems, err)
	}
	a.Close()
	s.Close()

	// The weak marks lost: check finds them, --repair puts them back.
	execMailDB(t, dir, `DELETE FROM fts_weak`)
	s = openTest(t, dir, nil)
	defer s.Close()
	problems, err := s.Check(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 3 || !strings.Contains(strings.Join(problems, "\n"), "longer than the index keeps") {
		t.Fatalf("check found %q, want the 3 contents with a long word", problems)
	}
	if problems, err := s.Check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("check after repair: %v, %v", problems, err)
	}
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	check("repaired", a, inbox)
}
