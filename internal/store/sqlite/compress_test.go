package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// TestInlineBodyCompressed: a small body of text is kept S2-compressed
// in mail.db and read back byte for byte, whole and at any offset; the
// full-text index reads it; a body that does not compress (random bytes)
// is kept as it is; tern check finds nothing wrong with either, and
// reports a compressed row whose length header is damaged, which
// OpenBody then refuses with an error (S2's block format has no
// checksum: damage inside the data would go unnoticed).
func TestInlineBodyCompressed(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)

	var text strings.Builder
	for i := range 150 {
		fmt.Fprintf(&text, "line %d of the quarterly report, nothing new under the sun\r\n", i)
	}
	text.WriteString("zanzibarquokka\r\n")
	header := "Subject: compressible\r\nFrom: a@example.org\r\n\r\n"
	plain := []byte(header + text.String())
	noise := make([]byte, 6000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	random := append([]byte("Subject: random\r\nContent-Type: application/octet-stream\r\n\r\n"), noise...)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: plain}, {Body: random}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	stored := func(uid uint32) (int, int) {
		t.Helper()
		var n, split int
		if err := u.db.QueryRowContext(ctx, `SELECT length(b.data), b.split FROM bodies b JOIN messages m ON m.content_id = b.content_id WHERE m.uid = ?`,
			uid).Scan(&n, &split); err != nil {
			t.Fatal(err)
		}
		return n, split
	}
	if n, split := stored(res.UIDs[0]); split != bodyHeaderless|bodyCompressed || n > len(plain)/3 {
		t.Errorf("text body kept as %d bytes (split %d), want at most %d, compressed and headerless", n, split, len(plain)/3)
	}
	if n, split := stored(res.UIDs[1]); split != bodyHeaderless || n != len(noise) {
		t.Errorf("random body kept as %d bytes (split %d), want %d as they are", n, split, len(noise))
	}
	for i, want := range [][]byte{plain, random} {
		b, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, b.Size())
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("UID %d: body differs (%d bytes, %v)", res.UIDs[i], len(got), err)
		}
		part := make([]byte, 100)
		if _, err := b.ReadAt(part, int64(len(want)-300)); err != nil || !bytes.Equal(part, want[len(want)-300:len(want)-200]) {
			t.Fatalf("UID %d: ReadAt near the end %q, %v", res.UIDs[i], part, err)
		}
		b.Close()
	}
	if _, _, err := a.indexPending(ctx, 32, 0); err != nil {
		t.Fatal(err)
	}
	found, err := a.SearchText(ctx, res.MailboxID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("zanzibarquokka")}})
	if err != nil || len(found.Pending) != 0 || len(found.Hits[0]) != 1 || found.Hits[0][0] != res.UIDs[0] {
		t.Fatalf("SEARCH BODY in the compressed body: %+v, %v", found, err)
	}
	if problems, err := u.check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("tern check: %v, %v", problems, err)
	}

	if _, err := u.db.ExecContext(ctx, `UPDATE bodies SET data = x'ffffffff00' WHERE split & 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[0]); err == nil {
		t.Error("OpenBody of a damaged compressed body succeeded")
	}
	problems, err := u.check(ctx, false)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "damaged") {
		t.Fatalf("tern check of a damaged body: %v, %v", problems, err)
	}
}

// TestNewerSchemaRefused: a mail.db written by a newer tern (a higher
// user_version) is not opened: this tern could misread what it holds
// (a tern before version 16, for one, cannot read compressed bodies).
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openInline(t, dir, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	setUserVersion(t, dir, 1, userSchemaVersion+1)
	s = openInline(t, dir, nil)
	defer s.Close()
	if a, err := s.Account(ctx, "u"); !errors.Is(err, errNewerSchema) {
		if err == nil {
			a.Close()
		}
		t.Fatalf("Account of a newer mail.db: %v, want errNewerSchema", err)
	}
}

// TestTextMovedOutOfFTS5: a mail.db of schema version 15, whose fts kept
// its text in FTS5's content table, is migrated (in batches, more rows
// than one) to fts_text with compressed bodies and a contentless fts:
// the searches answer as before, tern check finds nothing wrong, FTS5's
// content table is gone and the stored body text takes less than half
// its size.
func TestTextMovedOutOfFTS5(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	a := newUser(t, s)
	n := textBatch + 44
	var msgs []store.NewMessage
	for i := range n {
		body := fmt.Sprintf("From: sender%d@example.org\r\nSubject: note %d\r\n\r\n%s", i%7, i,
			strings.Repeat(fmt.Sprintf("paragraph of message %d about the harbour crane\r\n", i), 40))
		msgs = append(msgs, store.NewMessage{Body: []byte(body)})
	}
	if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	queries := []store.TextQuery{
		{Fields: store.TextBody, Needle: []byte("message 12 about")},
		{Fields: store.TextBody, Needle: []byte("harbour")},
		{Fields: store.TextAddress, Needle: []byte("sender3@")},
		{Fields: store.TextHeader | store.TextBody, Needle: []byte("note 29")},
		{Fields: store.TextBody, Needle: []byte("harbor crane"), Fuzzy: true},
	}
	before, err := a.SearchText(ctx, inbox.ID, queries)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Hits[0]) != 1 || len(before.Hits[1]) != n || len(before.Hits[2]) == 0 {
		t.Fatalf("searches before: %v", before.Hits)
	}
	a.Close()
	s.Close()

	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER contents_fts_deferred`, `DROP TRIGGER contents_fts_reused`,
		`CREATE VIRTUAL TABLE fts_v15 USING fts5(hdr UNINDEXED, addr UNINDEXED, body, mime, tokenize='trigram case_sensitive 1', detail=none)`,
		`INSERT INTO fts_v15(rowid, hdr, addr, body, mime) SELECT id, hdr, ` + addrOf + `, ` + unpackFunc + `(body), mime FROM fts_text f`, `DROP TABLE fts_fields`,
		`DROP TABLE fts`, `DROP TABLE fts_text`, `ALTER TABLE fts_v15 RENAME TO fts`,
		`PRAGMA user_version = 15`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var oldText int64
	if err := db.QueryRow(`SELECT SUM(length(c2)) FROM fts_content`).Scan(&oldText); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = openTest(t, dir, nil)
	defer s.Close()
	ai, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer ai.Close()
	wantFTS(t, s, n, 0, n)
	after, err := ai.SearchText(ctx, inbox.ID, queries)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("searches after the migration:\n%+v\nbefore:\n%+v", after, before)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check after the migration = %q, %v", p, err)
	}
	u := s.users[1]
	var contentTables int
	var packed int64
	if err := u.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM sqlite_schema WHERE name = 'fts_content'), (SELECT SUM(length(body)) FROM fts_text)`).Scan(&contentTables, &packed); err != nil {
		t.Fatal(err)
	}
	if contentTables != 0 || packed*2 > oldText {
		t.Fatalf("after the migration: fts_content tables %d; body text %d bytes, was %d", contentTables, packed, oldText)
	}
}

// TestCompactPacksOldBodies: bodies kept uncompressed (as before schema
// version 16) are compressed by compaction, which then gives their pages
// back, and read back byte for byte.
func TestCompactPacksOldBodies(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	var msgs []store.NewMessage
	for i := range 100 {
		msgs = append(msgs, store.NewMessage{Body: fmt.Appendf(nil, "Subject: old %d\r\n\r\n%s", i,
			strings.Repeat(fmt.Sprintf("an old body, number %d, stored whole\r\n", i), 200))})
	}
	res, err := a.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	if _, err := u.db.ExecContext(ctx, `UPDATE bodies SET data = `+unpackFunc+`(data), split = split & 1 WHERE split & 2`); err != nil {
		t.Fatal(err)
	}
	packed := func() (n int) {
		t.Helper()
		if err := u.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM bodies WHERE split & 2`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := packed(); n != 0 {
		t.Fatalf("%d bodies compressed before compaction, want 0", n)
	}
	c, err := s.Compact(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if n := packed(); n != len(msgs) || c.After*2 > c.Before {
		t.Fatalf("after compaction: %d of %d bodies compressed, %d -> %d bytes", n, len(msgs), c.Before, c.After)
	}
	for i, uid := range res.UIDs {
		b, err := a.OpenBody(ctx, res.MailboxID, uid)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, b.Size())
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, msgs[i].Body) {
			t.Fatalf("UID %d after compaction: body differs (%v)", uid, err)
		}
		b.Close()
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check after compaction = %q, %v", p, err)
	}
}

// TestDamagedStoredText: an fts_text row whose body does not decompress
// makes the searches that read it fail with an error (never a panic or a
// wrong answer); tern check reports it instead of failing, --repair
// drops it and indexes the message again, and the store is consistent
// and answers as before.
func TestDamagedStoredText(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	var bodies []string
	for i := range 3 {
		bodies = append(bodies, fmt.Sprintf("Subject: %d\r\n\r\n%s", i, strings.Repeat("the lighthouse keeper writes again\r\n", 30)))
	}
	a, inbox := searchSetup(t, s, bodies)
	q := []store.TextQuery{{Fields: store.TextBody, Needle: []byte("keeper writes")}}
	if res, err := a.SearchText(ctx, inbox, q); err != nil || len(res.Hits[0]) != 3 {
		t.Fatalf("search before: %+v, %v", res, err)
	}
	if _, err := s.users[1].db.ExecContext(ctx, `UPDATE fts_text SET body = x'ffffffff0f00' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SearchText(ctx, inbox, q); err == nil {
		t.Fatal("search over a damaged stored text succeeded")
	}
	p, err := s.Check(ctx, false)
	if err != nil || len(p) != 1 || !strings.Contains(p[0], "stored text damaged") {
		t.Fatalf("Check = %q, %v; want the damaged row", p, err)
	}
	if _, err := s.Check(ctx, true); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("Check after repair = %q, %v", p, err)
	}
	if res, err := a.SearchText(ctx, inbox, q); err != nil || len(res.Hits[0])+len(res.Pending) != 3 {
		t.Fatalf("search after repair: %+v, %v", res, err)
	}
}
