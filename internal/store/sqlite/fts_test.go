package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// ftsCounts returns the rows of the index, the queue (to do) and the
// contents of user 1.
func ftsCounts(t *testing.T, s *Store) (indexed, queued, contents int) {
	t.Helper()
	u, err := s.acquireID(context.Background(), 1, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer s.release(u)
	// One snapshot: the background indexer may commit between queries.
	tx, err := u.db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for q, dst := range map[string]*int{
		`SELECT COUNT(*) FROM fts_text`:                    &indexed,
		`SELECT COUNT(*) FROM fts_pending WHERE state = 0`: &queued,
		`SELECT COUNT(*) FROM contents`:                    &contents,
	} {
		if err := tx.QueryRow(q).Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	// The indexes hold a row for every stored text, no more.
	for _, side := range ftsIndexTables {
		var n, missing int
		if err := tx.QueryRow(`SELECT COUNT(*), (SELECT COUNT(*) FROM fts_text WHERE id NOT IN (SELECT rowid FROM `+side+`)) FROM `+side).Scan(&n, &missing); err != nil {
			t.Fatal(err)
		}
		if n != indexed || missing != 0 {
			t.Fatalf("%s: %d rows, %d of fts_text missing; fts_text has %d", side, n, missing, indexed)
		}
	}
	return
}

func wantFTS(t *testing.T, s *Store, indexed, queued, contents int) {
	t.Helper()
	i, q, c := ftsCounts(t, s)
	if i != indexed || q != queued || c != contents {
		t.Fatalf("fts rows %d, queued %d, contents %d; want %d, %d, %d", i, q, c, indexed, queued, contents)
	}
}

// TestTextIndexLifecycle: Append queues each new content in its own
// transaction (the queue outlives the process), IndexText drains it,
// COPY reuses the content's row, the row goes with the last copy, and
// --rebuild indexes everything again.
func TestTextIndexLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	wantFTS(t, s, 0, 3, 3)
	s.Close()

	s = openTest(t, dir, nil) // the queue survived
	defer s.Close()
	wantFTS(t, s, 0, 3, 3)
	var calls int
	if err := s.IndexText(ctx, "u", false, func(done, left int) { calls++ }); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 3, 0, 3)
	if calls == 0 {
		t.Fatal("no progress reported")
	}
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	inbox, _ := a.Mailbox(ctx, "INBOX")
	res, err := a.SearchText(ctx, inbox.ID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("message 1.")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pending) != 0 || len(res.Hits[0]) != 1 || res.Hits[0][0] != 2 {
		t.Fatalf("SearchText = %+v; want hit UID 2, nothing pending", res)
	}
	if err := a.CreateMailbox(ctx, "Copy", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Copy(ctx, inbox.ID, []uint32{1, 2}, "Copy"); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 3, 0, 3)
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{1, 3}, false); err != nil {
		t.Fatal(err)
	}
	// Content 3 had no other copy: its row waits for the indexer.
	wantFTS(t, s, 3, 0, 2)
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 2, 0, 2)
	if err := s.IndexText(ctx, "u", true, nil); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 2, 0, 2)
}

// TestTextIndexMigration: opening a mail.db of schema version 5 queues
// every existing content for the indexer.
func TestTextIndexMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	s.Close()
	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER contents_fts_deferred`, `DROP TRIGGER contents_fts_reused`, `DROP TABLE fts`, `DROP TABLE fts_pending`, `DROP TABLE fts_weak`, `DROP TABLE fts_gone`,
		`ALTER TABLE contents DROP COLUMN preview`, `PRAGMA user_version = 5`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s = openTest(t, dir, nil)
	defer s.Close()
	wantFTS(t, s, 0, 4, 4)
	// The indexer fills in the previews of the old messages.
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	inbox, _ := a.Mailbox(ctx, "INBOX")
	err = a.Fetch(ctx, inbox.ID, []uint32{1, 2, 3, 4}, store.WantPreview, func(m *store.Message) error {
		if m.Preview == nil || !strings.HasPrefix(*m.Preview, "Body of message") {
			t.Errorf("UID %d: preview %v", m.UID, m.Preview)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTextIndexer: the background indexer of a Store drains what Append
// queues (the backfill at start included) without anyone asking.
func TestTextIndexer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	s.Close()
	s = openWith(t, dir, Options{TextIndexer: true})
	defer s.Close()
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(2)}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if i, q, _ := ftsCounts(t, s); i == 2 && q == 0 {
			return
		}
		if time.Now().After(deadline) {
			wantFTS(t, s, 2, 0, 2)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTextIndexCheck: tern check finds index rows that differ from their
// message and contents neither indexed nor queued; --repair indexes them
// again.
func TestTextIndexCheck(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check = %q, %v; want consistent", p, err)
	}
	u, err := s.acquireID(ctx, 1, "u")
	if err != nil {
		t.Fatal(err)
	}
	// Row 1's stored text changes; row 2's text goes (its rows in the
	// three indexes and its address lines stay, and it is neither
	// indexed nor queued), row 3 goes from the word index alone, row 4
	// loses its address lines (it then differs from its message).
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`UPDATE fts_text SET body = ? WHERE id = 1`, []any{packText([]byte("something else"))}},
		{`DELETE FROM fts_text WHERE id = 2`, nil},
		{`DELETE FROM fts_words WHERE rowid = 3`, nil},
		{`DELETE FROM fts_fields WHERE id = 4`, nil},
	} {
		if _, err := u.db.Exec(q.query, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	s.release(u)
	p, err := s.Check(ctx, true)
	if err != nil || len(p) != 8 || !slices.Contains(p, `user "u": field lines 2 have no stored text`) ||
		!slices.Contains(p, `user "u": full-text index row 4 differs from its message`) {
		t.Fatalf("Check(repair) = %q, %v; want 8 problems", p, err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check after repair = %q, %v; want consistent", p, err)
	}
	wantFTS(t, s, 4, 0, 4)
}

func TestTrigramQuery(t *testing.T) {
	for _, tc := range []struct {
		needle, want string
		ok           bool
	}{
		{"ab", "", false},
		{"日本", "", false},
		{"\xff\xfeabc", "", false},
		{"abc", `"abc"`, true},
		{`a"bcb"`, `"a""b" AND """bc" AND "bcb" AND "cb"""`, true},
		{"abab", `"aba" AND "bab"`, true},
		{"日本語です", `"日本語" AND "本語で" AND "語です"`, true},
	} {
		got, ok := trigramQuery([]byte(tc.needle))
		if got != tc.want || ok != tc.ok {
			t.Errorf("trigramQuery(%q) = %q, %v; want %q, %v", tc.needle, got, ok, tc.want, tc.ok)
		}
	}
	long, _ := trigramQuery([]byte("abcdefghijklmnopqrstuvwxyz"))
	if n := strings.Count(long, " AND ") + 1; n != maxQueryTrigrams || !strings.HasPrefix(long, `"abc"`) || !strings.HasSuffix(long, `"xyz"`) {
		t.Errorf("long needle: %d trigrams: %s", n, long)
	}
}

// TestSearchTextChecksOnlyItsMailbox: a search in one mailbox checks the
// stored text of that mailbox's candidates only, not of every message in
// the account that the index proposes (a search of a small INBOX beside
// a large archive must not cost the archive).
func TestSearchTextChecksOnlyItsMailbox(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.CreateMailbox(ctx, "Archive", ""); err != nil {
		t.Fatal(err)
	}
	body := func(i int) []byte {
		return []byte(fmt.Sprintf("Subject: s%d\r\n\r\nthe word quokka appears here %d\r\n", i, i))
	}
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: body(0)}}); err != nil {
		t.Fatal(err)
	}
	var archive []store.NewMessage
	for i := 1; i <= 50; i++ {
		archive = append(archive, store.NewMessage{Body: body(i)})
	}
	if _, err := a.Append(ctx, "Archive", archive); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	before := containsCalls.Load()
	res, err := a.SearchText(ctx, inbox.ID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("quokka")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits[0]) != 1 || res.Hits[0][0] != 1 {
		t.Fatalf("SearchText = %+v; want INBOX's UID 1", res)
	}
	if n := containsCalls.Load() - before; n > 2 {
		t.Errorf("the search checked %d stored texts for a mailbox with one candidate", n)
	}
	// The same for a needle inside a word (no word index proof) and one
	// beside a word the word index proves (the remainder searchOne checks).
	for _, needle := range []string{"uokk", "appears"} {
		before = containsCalls.Load()
		res, err = a.SearchText(ctx, inbox.ID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte(needle)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits[0]) != 1 || res.Hits[0][0] != 1 {
			t.Fatalf("SearchText %q = %+v; want INBOX's UID 1", needle, res)
		}
		if n := containsCalls.Load() - before; n > 2 {
			t.Errorf("%q: the search checked %d stored texts for a mailbox with one candidate", needle, n)
		}
	}
}

// TestTextIndexDeferredDelete: an EXPUNGE leaves the fts row of a freed
// content to the indexer; a new content that reuses the id drops the old
// row at once, so a search never matches the new message by the old
// text, before or after indexing.
func TestTextIndexDeferredDelete(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	a, inboxID := searchSetup(t, s, []string{string(storetest.Msg(0)), string(storetest.Msg(1))})
	if _, err := a.Expunge(ctx, inboxID, []uint32{2}, false); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 2, 0, 1) // content 2's row waits in fts_gone
	search := func(needle string) store.TextResult {
		t.Helper()
		res, err := a.SearchText(ctx, inboxID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte(needle)}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := search("message 1."); len(res.Hits[0]) != 0 || len(res.Pending) != 0 {
		t.Fatalf("expunged message found: %+v", res)
	}
	// The next content takes id 2 again (no AUTOINCREMENT).
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: new\r\n\r\nsomething else entirely\r\n")}}); err != nil {
		t.Fatal(err)
	}
	var reused int64
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT MAX(id) FROM contents`).Scan(&reused); err != nil || reused != 2 {
		t.Fatalf("new content id %d, %v; want 2 (reused)", reused, err)
	}
	wantFTS(t, s, 1, 1, 2) // the old row went with the reuse
	if res := search("message 1."); len(res.Hits[0]) != 0 {
		t.Fatalf("new message matched by the old text: %+v", res)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 2, 0, 2)
	if res := search("message 1."); len(res.Hits[0]) != 0 {
		t.Fatalf("new message matched by the old text: %+v", res)
	}
	if res := search("else entirely"); len(res.Hits[0]) != 1 || res.Hits[0][0] != 3 {
		t.Fatalf("new message not found: %+v", res)
	}
}

// TestTextIndexerPurgesDeleted: the background indexer removes the rows
// of expunged contents without an APPEND to wake it.
func TestTextIndexerPurgesDeleted(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, t.TempDir(), Options{TextIndexer: true})
	defer s.Close()
	a, inboxID := searchSetup(t, s, []string{string(storetest.Msg(0)), string(storetest.Msg(1)), string(storetest.Msg(2))})
	waitFTS := func(indexed int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if i, q, _ := ftsCounts(t, s); i == indexed && q == 0 {
				return
			}
			if time.Now().After(deadline) {
				wantFTS(t, s, indexed, 0, 3)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFTS(3)
	if _, err := a.Expunge(ctx, inboxID, []uint32{1, 3}, false); err != nil {
		t.Fatal(err)
	}
	waitFTS(1)
	var gone int
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fts_gone`).Scan(&gone); err != nil || gone != 0 {
		t.Fatalf("fts_gone has %d rows, %v; want 0", gone, err)
	}
}

// TestTextIndexMigrationDeferredDelete: a mail.db of schema version 11
// (fts rows deleted by the deleting transaction) gets the deferred
// delete.
func TestTextIndexMigrationDeferredDelete(t *testing.T) {
	ctx := context.Background()
	s, a := reopenedAfter(t, `DROP TRIGGER contents_fts_deferred`, `DROP TRIGGER contents_fts_reused`, `DROP TABLE fts_gone`,
		`CREATE TRIGGER contents_fts_gone AFTER DELETE ON contents BEGIN DELETE FROM fts WHERE rowid = OLD.id; END`,
		`PRAGMA user_version = 11`)
	var old int
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'contents_fts_gone'`).Scan(&old); err != nil || old != 0 {
		t.Fatalf("old trigger still there (%d, %v)", old, err)
	}
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	inbox, _ := a.Mailbox(ctx, "INBOX")
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{1}, false); err != nil {
		t.Fatal(err)
	}
	wantFTS(t, s, 1, 0, 0)
}

// TestIndexPendingTextCap: the background indexer's transaction stops
// after the content that brings its text to maxText (the index's inserts
// run under the write lock), leaving the rest queued; without a cap a
// batch takes every queued content up to its count. A batch says whether
// it left queued contents behind (cut short, or full), which is when the
// indexer goes on with another at once.
func TestIndexPendingTextCap(t *testing.T) {
	ctx := context.Background()
	_, _, acct := openUser(t)
	a := acct.(*account)
	line := strings.Repeat("lorem ipsum dolor sit amet consectetur ", 25) + "\r\n"
	var msgs []store.NewMessage
	for i := range 5 {
		msgs = append(msgs, store.NewMessage{Body: fmt.Appendf(nil, "Subject: doc %d\r\n\r\n%s", i, strings.Repeat(line, 40))}) // about 40 KB
	}
	if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	// batches runs indexPending once per wanted (taken, more) pair.
	type batch struct {
		n    int
		more bool
	}
	batches := func(what string, size, maxText int, wants ...batch) {
		t.Helper()
		for _, want := range wants {
			n, more, err := a.indexPending(ctx, size, maxText)
			if err != nil || n != want.n || more != want.more {
				t.Fatalf("%s: indexed %d, more %v (%v), want %d, %v", what, n, more, err, want.n, want.more)
			}
		}
	}
	batches("capped batches", 32, 64<<10, batch{2, true}, batch{2, true}, batch{1, false})
	if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	batches("an uncapped batch", 32, 0, batch{5, false})
	if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	batches("batches of 4", 4, 0, batch{4, true}, batch{1, false}, batch{0, false})
}

// TestPendingIDsFromIndex: SEARCH lists the indexing queue from its
// index alone, without reading the rows (which hold field lines), in a
// mail.db made now and in one of schema version 19, without the index,
// and the list is the queue's.
func TestPendingIDsFromIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openInline(t, dir, nil)
	a := newUser(t, s)
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}}); err != nil {
		t.Fatal(err)
	}
	check := func(u *userDB) {
		t.Helper()
		var plan string
		var id, parent, unused int
		if err := u.db.QueryRowContext(ctx, `EXPLAIN QUERY PLAN `+pendingIDsSQL).Scan(&id, &parent, &unused, &plan); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "COVERING INDEX fts_pending_state") {
			t.Fatalf("queue listed by %q, want the covering index", plan)
		}
		var got, want string
		if err := u.db.QueryRowContext(ctx, pendingIDsSQL).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if err := u.db.QueryRowContext(ctx, `SELECT group_concat(content_id) FROM (SELECT content_id FROM fts_pending NOT INDEXED ORDER BY content_id)`).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got != want || want == "" {
			t.Fatalf("queue from the index %q, from the table %q", got, want)
		}
	}
	check(s.users[1])
	if _, err := s.users[1].db.ExecContext(ctx, `DROP INDEX fts_pending_state`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	setUserVersion(t, dir, 1, 19)
	s = openInline(t, dir, nil)
	defer s.Close()
	if _, err := s.Account(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	check(s.users[1])
}

// TestSearchQueuedPaths: SEARCH finds a mailbox's queued messages both
// when it lists the whole queue (the mailbox holds more contents than the
// queue) and when it looks the mailbox's contents up in it (the queue is
// longer), and never another mailbox's.
func TestSearchQueuedPaths(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	if err := a.CreateMailbox(ctx, "Small", ""); err != nil {
		t.Fatal(err)
	}
	appendN := func(box string, n, from int) {
		t.Helper()
		for i := range n {
			if _, err := a.Append(ctx, box, []store.NewMessage{{Body: storetest.Msg(from + i)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN("INBOX", 30, 0)
	if _, _, err := a.indexPending(ctx, 100, 0); err != nil {
		t.Fatal(err)
	}
	appendN("INBOX", 5, 100) // INBOX UIDs 31..35 queued
	appendN("Small", 3, 200) // Small UIDs 1..3 queued: 8 in the queue
	qs := []store.TextQuery{{Fields: store.TextBody, Needle: []byte("no such words")}}
	for _, tc := range []struct {
		box  string
		want []uint32
	}{
		{"INBOX", []uint32{31, 32, 33, 34, 35}}, // 35 contents > 8 queued: the queue is listed
		{"Small", []uint32{1, 2, 3}},            // 3 contents < 8 queued: looked up
	} {
		m, err := a.Mailbox(ctx, tc.box)
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.SearchText(ctx, m.ID, qs)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Pending, tc.want) || len(res.Hits[0]) != 0 {
			t.Errorf("%s: pending %v hits %v, want pending %v", tc.box, res.Pending, res.Hits[0], tc.want)
		}
	}
}
