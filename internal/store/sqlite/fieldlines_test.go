package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// TestFieldLinesMigrated: a schema-16 mail.db, whose fts_text.addr held
// only the normalized addresses, is migrated to 17: every row's field
// lines are rebuilt from its content's stored header (equal to what the
// indexer extracts now) into fts_fields, fts_text.addr is left NULL, a
// content without a stored header is queued to be indexed again,
// one-field queries then answer exactly (FROM finds the From field only,
// not the same name in To or the Subject; SUBJECT the Subject only), and
// tern check is clean.
func TestFieldLinesMigrated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	bodies := []string{
		"From: Ann Rossi <ann@example.org>\r\nTo: bob@example.org\r\nSubject: rossi report\r\n\r\nhello\r\n",
		"From: =?UTF-8?Q?Bj=C3=B6rn?= <bjorn@example.org>\r\nTo: Ann Rossi <ann@example.org>\r\nCc: carol@example.org\r\n\r\nhello\r\n",
		"From: carol@example.org\r\nSubject: nothing\r\n\r\nhello\r\n",
	}
	a, inbox := searchSetup(t, s, bodies)
	a.Close()
	s.Close()

	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT id, lines FROM fts_fields`)
	if err != nil {
		t.Fatal(err)
	}
	old := map[int64][]byte{}
	for rows.Next() {
		var id int64
		var addr []byte
		if err := rows.Scan(&id, &addr); err != nil {
			t.Fatal(err)
		}
		// Before 17: only the second line of each address field's pair,
		// no subject.
		var address, normalized [][]byte
		for _, l := range bytes.SplitAfter(addr, []byte("\n")) {
			if len(l) > 0 && !bytes.HasPrefix(l, []byte("subject: ")) {
				address = append(address, l)
			}
		}
		for i := 1; i < len(address); i += 2 {
			normalized = append(normalized, address[i])
		}
		old[id] = bytes.Join(normalized, nil)
	}
	rows.Close()
	if len(old) != len(bodies) {
		t.Fatalf("%d rows in fts_text", len(old))
	}
	for id, addr := range old {
		if _, err := db.Exec(`UPDATE fts_text SET addr = ? WHERE id = ?`, addr, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{`DROP TABLE fts_fields`, `UPDATE contents SET header = NULL WHERE id = (SELECT MAX(id) FROM contents)`, `PRAGMA user_version = 16`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s = openTest(t, dir, nil)
	defer s.Close()
	ai, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer ai.Close()
	u := s.users[1]
	var rebuilt, queued int
	rows, err = u.db.QueryContext(ctx, `SELECT a.lines, c.header FROM fts_fields a JOIN contents c ON c.id = a.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var addr, header []byte
		if err := rows.Scan(&addr, &header); err != nil {
			t.Fatal(err)
		}
		if want := search.FieldLines(header); !bytes.Equal(addr, want) {
			t.Errorf("addr %q, want %q", addr, want)
		}
		rebuilt++
	}
	rows.Close()
	if err := u.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fts_pending`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	var leftInText int
	if err := u.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fts_text WHERE addr IS NOT NULL`).Scan(&leftInText); err != nil {
		t.Fatal(err)
	}
	if rebuilt != 2 || queued != 1 || leftInText != 0 {
		t.Fatalf("%d rows rebuilt, %d queued, %d left in fts_text; want 2, 1, 0", rebuilt, queued, leftInText)
	}
	qs := []store.TextQuery{
		{Fields: store.TextFrom, Needle: search.Fold("rossi")},
		{Fields: store.TextTo, Needle: search.Fold("rossi")},
		{Fields: store.TextFrom, Needle: search.Fold("björn")},
		{Fields: store.TextCc, Needle: []byte{}},
		{Fields: store.TextSubject, Needle: search.Fold("rossi")},
	}
	for _, c := range []struct {
		when string
		want [][]uint32
	}{{"after the migration", [][]uint32{{1}, {2}, {2}, {2}, {1}}}, {"after indexing", [][]uint32{{1}, {2}, {2}, {2}, {1}}}} {
		res, err := ai.SearchText(ctx, inbox, qs)
		if err != nil {
			t.Fatal(err)
		}
		if c.when == "after the migration" && !slices.Equal(res.Pending, []uint32{3}) {
			t.Errorf("%s: pending %v, want [3]", c.when, res.Pending)
		}
		for i, w := range c.want {
			if !slices.Equal(res.Hits[i], w) {
				t.Errorf("%s: %q in field %#x: hits %v, want %v", c.when, qs[i].Needle, qs[i].Fields, res.Hits[i], w)
			}
		}
		if err := s.IndexText(ctx, "u", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check = %q, %v", p, err)
	}
}

// senderBodies returns n messages from sender0@example.org.. to
// team@example.org.
func senderBodies(n int) []string {
	var bodies []string
	for i := range n {
		bodies = append(bodies, fmt.Sprintf("From: sender%d@example.org\r\nTo: team@example.org\r\nSubject: s%d\r\n\r\nhello\r\n", i, i))
	}
	return bodies
}

// TestFieldDirect: in a mailbox holding few of the account's
// contents a one-field query reads every field line of the mailbox
// (directShare) instead of asking fts_head, with the same answers; in a
// large one only fts_head's candidates are read.
func TestFieldDirect(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	bodies := senderBodies(4 * directShare)
	bodies = append(bodies, "From: Zed Quill <zed@example.org>\r\nSubject: z\r\n\r\nhello\r\n",
		"From: amy@example.org\r\nTo: Zed Quill <zed@example.org>\r\n\r\nhello\r\n")
	a, inbox := searchSetup(t, s, bodies)
	n := uint32(len(bodies))
	if err := a.CreateMailbox(ctx, "Few", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Copy(ctx, inbox, []uint32{1, n - 1, n}, "Few"); err != nil {
		t.Fatal(err)
	}
	few, err := a.Mailbox(ctx, "Few")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mailbox int64
		field   store.TextField
		want    []uint32
		reads   int64
	}{
		{inbox, store.TextFrom, []uint32{n - 1}, 2}, // fts_head: the two with "zed"
		{inbox, store.TextTo, []uint32{n}, 2},
		{few.ID, store.TextFrom, []uint32{2}, 3}, // every line of the mailbox
		{few.ID, store.TextTo, []uint32{3}, 3},
	} {
		before := fieldHoldsCalls.Load()
		res, err := a.SearchText(ctx, c.mailbox, []store.TextQuery{{Fields: c.field, Needle: search.Fold("Zed Q")}})
		if err != nil {
			t.Fatal(err)
		}
		if reads := fieldHoldsCalls.Load() - before; !slices.Equal(res.Hits[0], c.want) || reads != c.reads {
			t.Errorf("mailbox %d, field %#x: hits %v after %d reads, want %v after %d", c.mailbox, c.field, res.Hits[0], reads, c.want, c.reads)
		}
	}
}

// TestQueuedFieldLines: a message appended and not yet indexed is
// answered by FROM..BCC and SUBJECT from the field lines Append queued
// with it (not left pending for the caller to read), in a small mailbox
// and in one large enough for fts_head's candidates; a query of another
// kind in the same search still leaves it pending; expunged before
// indexing it leaves nothing behind, and indexing it gives the same
// answers.
func TestQueuedFieldLines(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	bodies := senderBodies(4 * directShare)
	a, inbox := searchSetup(t, s, bodies) // indexed
	queued := []string{
		"From: Zed Quill <zed@example.org>\r\nSubject: quarterly figures\r\n\r\nhello\r\n",
		"From: amy@example.org\r\nTo: Zed Quill <zed@example.org>\r\n\r\nhello\r\n",
		"From: bob@example.org\r\nSubject: gone\r\n\r\nhello\r\n",
	}
	for _, b := range queued {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(b)}}); err != nil {
			t.Fatal(err)
		}
	}
	n := uint32(len(bodies))
	if err := a.CreateMailbox(ctx, "Few", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Copy(ctx, inbox, []uint32{1, n + 1, n + 2}, "Few"); err != nil {
		t.Fatal(err)
	}
	few, err := a.Mailbox(ctx, "Few")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		mailbox int64
		q       store.TextQuery
		want    []uint32
	}{
		{inbox, store.TextQuery{Fields: store.TextFrom, Needle: search.Fold("Zed Q")}, []uint32{n + 1}},
		{inbox, store.TextQuery{Fields: store.TextTo, Needle: search.Fold("zed@example")}, []uint32{n + 2}},
		{inbox, store.TextQuery{Fields: store.TextSubject, Needle: search.Fold("QUARTERLY")}, []uint32{n + 1}},
		{inbox, store.TextQuery{Fields: store.TextFrom, Needle: search.Fold("sender3@")}, []uint32{4}},
		{few.ID, store.TextQuery{Fields: store.TextFrom, Needle: search.Fold("Zed Q")}, []uint32{2}},
		{few.ID, store.TextQuery{Fields: store.TextTo, Needle: search.Fold("zed")}, []uint32{3}},
	}
	check := func(stage string) {
		t.Helper()
		for _, c := range cases {
			res, err := a.SearchText(ctx, c.mailbox, []store.TextQuery{c.q})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Hits[0], c.want) || len(res.Pending) != 0 {
				t.Errorf("%s: mailbox %d, %#x %q: hits %v pending %v, want hits %v and none pending", stage, c.mailbox, c.q.Fields, c.q.Needle, res.Hits[0], res.Pending, c.want)
			}
		}
	}
	check("queued")
	// A BODY query in the same search: the queued messages are read.
	res, err := a.SearchText(ctx, inbox, []store.TextQuery{{Fields: store.TextFrom, Needle: search.Fold("zed")}, {Fields: store.TextBody, Needle: search.Fold("hello")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{n + 1, n + 2, n + 3}; !slices.Equal(res.Pending, want) {
		t.Errorf("FROM and BODY: pending %v, want %v", res.Pending, want)
	}
	// Expunged while queued: its queue row and lines go with it.
	if _, err := a.Expunge(ctx, inbox, []uint32{n + 3}, false); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check while queued = %q, %v", p, err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	check("indexed")
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check after indexing = %q, %v", p, err)
	}
}

// TestPendingLinesMigrated: a mail.db of schema version 17 (a queue
// without lines) gains fts_pending.lines; what it queued before stays
// pending (read by the caller), what is appended after is decided by its
// lines.
func TestPendingLinesMigrated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	a := newUser(t, s)
	from := func(name string) store.NewMessage {
		return store.NewMessage{Body: []byte("From: " + name + " <x@example.org>\r\nSubject: hi\r\n\r\nhello\r\n")}
	}
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{from("Zed Old")}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	s.Close()
	execMailDB(t, dir, `ALTER TABLE fts_pending DROP COLUMN lines`, `PRAGMA user_version = 17`)

	s = openTest(t, dir, nil)
	defer s.Close()
	a2, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if _, err := a2.Append(ctx, "INBOX", []store.NewMessage{from("Zed New")}); err != nil {
		t.Fatal(err)
	}
	inbox, err := a2.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	res, err := a2.SearchText(ctx, inbox.ID, []store.TextQuery{{Fields: store.TextFrom, Needle: search.Fold("zed")}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Hits[0], []uint32{2}) || !slices.Equal(res.Pending, []uint32{1}) {
		t.Errorf("after the migration: hits %v pending %v, want [2] and [1]", res.Hits[0], res.Pending)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check = %q, %v", p, err)
	}
}
