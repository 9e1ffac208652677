package sqlite

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
	"github.com/tern-imap/tern/internal/store/storetest"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openTest opens a store that keeps every body in a file, which the tests
// of this package about body files look at; openInline keeps small bodies
// in the database, as tern does by default.
func openTest(t *testing.T, dir string, n store.Notifier) *Store {
	t.Helper()
	return openWith(t, dir, Options{Notifier: n, InlineBodyMax: -1})
}

func openInline(t *testing.T, dir string, n store.Notifier) *Store {
	t.Helper()
	return openWith(t, dir, Options{Notifier: n})
}

func openWith(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	o.Logger = quietLogger()
	s, err := Open(context.Background(), dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Run("bodies in files", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, dir string, n store.Notifier) store.Store {
			return openTest(t, dir, n)
		})
	})
	t.Run("bodies in the database", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, dir string, n store.Notifier) store.Store {
			return openInline(t, dir, n)
		})
	})
	// Same answers when flag changes commit without an fsync (and every
	// write transaction begins on a connection set up first).
	t.Run("fsync optimized", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, dir string, n store.Notifier) store.Store {
			return openWith(t, dir, Options{Notifier: n, Fsync: FsyncOptimized})
		})
	})
}

// blobFiles lists the body files of user id.
func blobFiles(t *testing.T, dir string, id int64) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, "users", itoa(id), "blobs")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func TestLayoutAndBlobLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	defer s.Close()
	// A user name that would be a path escape is just a name.
	if err := s.CreateUser(ctx, "../../evil", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "users", "1", "mail.db")); err != nil {
		t.Fatalf("user directory is not numeric: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tern.db")); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "../../evil")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.CreateMailbox(ctx, "B", ""); err != nil {
		t.Fatal(err)
	}
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}})
	if err != nil {
		t.Fatal(err)
	}
	files := blobFiles(t, dir, 1)
	if len(files) != 2 {
		t.Fatalf("blob files after append: %v", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil || (string(data) != string(storetest.Msg(1)) && string(data) != string(storetest.Msg(2))) {
		t.Fatalf("blob content %q, %v", data, err)
	}
	// A copy shares the body file.
	if _, err := a.Copy(ctx, res.MailboxID, res.UIDs, "B"); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir, 1)); n != 2 {
		t.Fatalf("copy created body files: %d", n)
	}
	// The file goes when its last reference does.
	if _, err := a.Expunge(ctx, res.MailboxID, nil, false); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir, 1)); n != 2 {
		t.Fatalf("files after expunging one reference: %d", n)
	}
	if err := a.DeleteMailbox(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	if files := blobFiles(t, dir, 1); len(files) != 0 {
		t.Fatalf("files after last reference went: %v", files)
	}
	problems, err := s.Check(ctx, false)
	if err != nil || len(problems) != 0 {
		t.Fatalf("Check: %v, %v", problems, err)
	}
	// Deleting the user removes their directory.
	a.Close()
	if err := s.DeleteUser(ctx, "../../evil"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "users", "1")); !os.IsNotExist(err) {
		t.Fatalf("user directory still there: %v", err)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	s, dir, a := openUser(t)
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("clean store: %v, %v", p, err)
	}
	files := blobFiles(t, dir, 1)
	// Damage: a truncated body, a missing body, an orphan file, and a
	// mailbox counter behind its messages.
	if err := os.WriteFile(files[0], []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(files[1]); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(filepath.Dir(files[0]), "00orphan")
	if err := os.WriteFile(orphan, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	if _, err := u.db.ExecContext(ctx, `UPDATE mailboxes SET uidnext = 1, highestmodseq = 1 WHERE name = 'INBOX'`); err != nil {
		t.Fatal(err)
	}
	p, err := s.Check(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 5 {
		t.Fatalf("problems: %q", p)
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Fatal("check without repair removed a file")
	}
	if _, err := s.Check(ctx, true); err != nil {
		t.Fatal(err)
	}
	p, err = s.Check(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	// Missing and damaged bodies cannot be repaired; the rest is.
	if len(p) != 2 {
		t.Fatalf("problems after repair: %q", p)
	}
	st, err := a.Status(ctx, "INBOX")
	if err != nil || st.UIDNext != 3 || st.HighestModSeq < 2 {
		t.Fatalf("status after repair: %+v %v", st, err)
	}
}

// Expunged UIDs are kept as ranges: emptying a mailbox of 300 messages that
// arrived one by one leaves one tombstone row, and still answers Vanished
// exactly.
func TestTombstonesAreRanges(t *testing.T) {
	ctx := context.Background()
	_, dir, a := openUser(t)
	for i := 0; i < 300; i++ {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	box, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.Status(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, box.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(filepath.Join(dir, "users", "1", "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM expunged`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d tombstone rows for one expunge of 300 consecutive UIDs", n)
	}
	// A client synchronised before any message arrived knew none of them.
	if v, err := a.Vanished(ctx, box.ID, 1); err != nil || len(v) != 0 {
		t.Fatalf("Vanished since modseq 1 = %v, %v", v, err)
	}
	v, err := a.Vanished(ctx, box.ID, st.HighestModSeq)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 300 || v[0] != 1 || v[299] != 300 {
		t.Fatalf("Vanished = %d UIDs (%v...)", len(v), v[:min(3, len(v))])
	}
}

// A mail.db from before tombstone ranges (per-UID rows, user_version 0) is
// migrated on open and keeps its expunge history.
func TestMigrateTombstonesToRanges(t *testing.T) {
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
	box, _ := a.Mailbox(ctx, "INBOX")
	a.Close()
	s.Close()
	// Rewrite the table in the old layout with two expunged UIDs.
	path := filepath.Join(dir, "users", "1", "mail.db")
	db, err := sqldb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TABLE expunged`,
		`CREATE TABLE expunged(mailbox_id INTEGER NOT NULL, uid INTEGER NOT NULL, modseq INTEGER NOT NULL, PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID`,
		`INSERT INTO expunged VALUES(` + itoa(box.ID) + `, 1, 5), (` + itoa(box.ID) + `, 2, 6)`,
		`UPDATE mailboxes SET uidnext = 3, highestmodseq = 6 WHERE id = ` + itoa(box.ID),
		`ALTER TABLE contents DROP COLUMN header`,
		`PRAGMA user_version = 0`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s = openTest(t, dir, nil)
	defer s.Close()
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cs, err := a.Changes(ctx, box.ID, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Expunged) != 2 || cs.Expunged[0] != 1 || cs.Expunged[1] != 2 {
		t.Fatalf("expunges after migration: %v", cs.Expunged)
	}
	// The header column came back (schema v2) and new mail fills it.
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}})
	if err != nil {
		t.Fatal(err)
	}
	var header []byte
	if err := a.Fetch(ctx, box.ID, res.UIDs, store.WantHeader, func(m *store.Message) error {
		header = m.Header
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(header, []byte("\r\n\r\n")) || !bytes.HasPrefix(storetest.Msg(1), header) {
		t.Fatalf("stored header after migration: %q", header)
	}
}

// TestMigrateContentRefs: a schema version 2 database (reference counts in
// contents.refs, kept by triggers) moves them to content_refs, recounted;
// then copies and expunges keep counting and collect bodies as before, and
// tern check finds and repairs a wrong or missing count.
func TestMigrateContentRefs(t *testing.T) {
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
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Copy(ctx, res.MailboxID, res.UIDs, "INBOX"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	s.Close()
	// Back to the version 2 layout, with a count that is off: migration
	// recounts from the messages.
	path := filepath.Join(dir, "users", "1", "mail.db")
	db, err := sqldb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TRIGGER messages_ref`,
		`DROP TRIGGER messages_unref`,
		`DROP TABLE content_refs`,
		`ALTER TABLE contents ADD COLUMN refs INTEGER NOT NULL DEFAULT 0`,
		`UPDATE contents SET refs = 7`,
		`CREATE INDEX contents_unref ON contents(id) WHERE refs <= 0`,
		`CREATE TRIGGER messages_ref AFTER INSERT ON messages BEGIN UPDATE contents SET refs = refs + 1 WHERE id = NEW.content_id; END`,
		`CREATE TRIGGER messages_unref AFTER DELETE ON messages BEGIN UPDATE contents SET refs = refs - 1 WHERE id = OLD.content_id; END`,
		`PRAGMA user_version = 2`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s = openTest(t, dir, nil)
	defer s.Close()
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("after migration: %q, %v", p, err)
	}
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var triggers string
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT group_concat(sql) FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'messages_%ref'`).Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	if strings.Count(triggers, "content_refs") != 2 || strings.Contains(triggers, "UPDATE contents") {
		t.Fatalf("triggers after migration: %s", triggers)
	}
	// UIDs 1, 2 and their copies 3, 4: a new message, a copy of it, and
	// expunges down to one message; a body file goes with its last message.
	res2, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(3)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Copy(ctx, res.MailboxID, res2.UIDs, "INBOX"); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir, 1)); n != 3 {
		t.Fatalf("%d body files, want 3", n)
	}
	if _, err := a.Expunge(ctx, res.MailboxID, []uint32{1, 3, 5}, false); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir, 1)); n != 2 {
		t.Fatalf("%d body files after expunging all of one body's messages, want 2", n)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("after copy and expunge: %q, %v", p, err)
	}
	// Damage the counts: one wrong, one missing.
	u := s.users[1]
	if _, err := u.db.ExecContext(ctx, `UPDATE content_refs SET refs = 5 WHERE content_id = (SELECT MIN(content_id) FROM content_refs)`); err != nil {
		t.Fatal(err)
	}
	if _, err := u.db.ExecContext(ctx, `DELETE FROM content_refs WHERE content_id = (SELECT MAX(content_id) FROM content_refs)`); err != nil {
		t.Fatal(err)
	}
	p, err := s.Check(ctx, true)
	if err != nil || len(p) != 2 || !strings.Contains(p[0], "reference count 5") || !strings.Contains(p[1], "no reference count") {
		t.Fatalf("damaged counts: %q, %v", p, err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("after repair: %q, %v", p, err)
	}
	if _, err := a.Expunge(ctx, res.MailboxID, nil, false); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir, 1)); n != 0 {
		t.Fatalf("%d body files after expunging everything", n)
	}
}

// openUser opens a store in a new directory with a user "u" and returns
// the store, its directory and u's account, closed when the test ends.
func openUser(t *testing.T) (*Store, string, store.Account) {
	t.Helper()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	t.Cleanup(func() { s.Close() })
	if err := s.CreateUser(context.Background(), "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return s, dir, a
}

// TestInlineBodyLifecycle follows a body kept in the database (at most
// InlineBodyMax) next to one kept in a file: both read back byte for
// byte, a copy shares the row, the row goes with the last message that
// uses it, and tern check sees a damaged row.
func TestInlineBodyLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openWith(t, dir, Options{InlineBodyMax: 1024})
	defer s.Close()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.CreateMailbox(ctx, "B", ""); err != nil {
		t.Fatal(err)
	}
	small := storetest.Msg(1)
	large := append(storetest.Msg(2), bytes.Repeat([]byte("padding line\r\n"), 100)...)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: small}, {Body: large}})
	if err != nil {
		t.Fatal(err)
	}
	if files := blobFiles(t, dir, 1); len(files) != 1 {
		t.Fatalf("body files: %v, want the large body's only", files)
	}
	for i, want := range [][]byte{small, large} {
		b, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, b.Size())
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("body %d: %q, %v", i, got, err)
		}
		if _, isFile := b.(store.FileBody); isFile != (i == 1) {
			t.Fatalf("body %d: file-backed = %v", i, isFile)
		}
		if b.Parts() == nil {
			t.Fatalf("body %d: no part tree", i)
		}
		b.Close()
	}
	inlineRows := func() int {
		t.Helper()
		db, err := sqldb.Open(filepath.Join(dir, "users", "1", "mail.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM bodies`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cp, err := a.Copy(ctx, res.MailboxID, res.UIDs[:1], "B")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, res.MailboxID, res.UIDs, false); err != nil {
		t.Fatal(err)
	}
	if n := inlineRows(); n != 1 {
		t.Fatalf("bodies rows with the copy left: %d, want 1", n)
	}
	if files := blobFiles(t, dir, 1); len(files) != 0 {
		t.Fatalf("body files after expunge: %v", files)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("check: %q, %v", p, err)
	}
	db, err := sqldb.Open(filepath.Join(dir, "users", "1", "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE bodies SET data = x'00'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if p, _ := s.Check(ctx, false); len(p) != 1 || !strings.Contains(p[0], "(in the database) has size 1") {
		t.Fatalf("check of a damaged row: %q", p)
	}
	if _, err := a.Expunge(ctx, cp.DestMailboxID, cp.DestUIDs, false); err != nil {
		t.Fatal(err)
	}
	if n := inlineRows(); n != 0 {
		t.Fatalf("bodies rows after the last copy went: %d", n)
	}
}

// reopenedAfter creates user "u" in a new store, takes its mail.db back to
// an older schema with the statements undo (run outside the store), opens
// the store again and checks that the migration recorded the current
// version. It returns the reopened store and the user's account, both
// closed at the end of the test.
func reopenedAfter(t *testing.T, undo ...string) (*Store, store.Account) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range undo {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s = openTest(t, dir, nil)
	t.Cleanup(func() { s.Close() })
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	var version int
	if err := s.users[1].db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil || version != userSchemaVersion {
		t.Fatalf("user_version = %d, %v; want %d", version, err, userSchemaVersion)
	}
	return s, a
}

// newUser creates user "u" in s and returns its account, closed with
// the test.
func newUser(t testing.TB, s *Store) *account {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a.(*account)
}

// execMailDB runs statements on user 1's mail.db in dir, with the store
// closed (a test's way to make an older layout or damage).
func execMailDB(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
