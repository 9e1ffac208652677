package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

func TestMain(m *testing.M) {
	os.Exit(s3test.Wrap(func() int { return pgtest.Main(m) }))
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openUser opens a store on a fresh database with user "u" and returns
// it and u's account, both closed when the test ends.
func openUser(t *testing.T) (*Store, store.Account) {
	t.Helper()
	s := openURL(t, pgtest.NewDatabase(t), nil)
	t.Cleanup(func() { s.Close() })
	return s, newUser(t, s)
}

// newUser creates user "u" on s and returns its account, closed when the
// test ends (before s, if s was opened first).
func newUser(t *testing.T, s *Store) store.Account {
	t.Helper()
	if err := s.CreateUser(context.Background(), "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func openURL(t *testing.T, url string, n store.Notifier) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Notifier: n, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestConformance runs storetest with one database per test; the suite's
// directory names the database, so a reopen finds the same one.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dbs := map[string]string{}
	storetest.Run(t, func(t *testing.T, dir string, n store.Notifier) store.Store {
		mu.Lock()
		url, ok := dbs[dir]
		if !ok {
			url = pgtest.NewDatabase(t)
			dbs[dir] = url
		}
		mu.Unlock()
		return openURL(t, url, n)
	})
}

// TestNewerSchemaRefused: a database migrated by a newer tern is not
// opened.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := openURL(t, url, nil)
	if _, err := s.pool.Exec(ctx, `UPDATE tern_schema SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, url, Options{Logger: quietLogger()}); !errors.Is(err, errNewerSchema) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

// TestBodiesCompressedWithLZ4: a body kept in PostgreSQL, and a large
// header, are compressed with LZ4 where the server has it (preferLZ4),
// and the columns keep no compression of their own (a backup restores on
// a server without LZ4).
func TestBodiesCompressedWithLZ4(t *testing.T) {
	ctx := context.Background()
	s := openURL(t, pgtest.NewDatabase(t), nil)
	defer s.Close()
	if _, err := s.pool.Exec(ctx, `CREATE TEMP TABLE lz4_probe(b bytea COMPRESSION lz4)`); err != nil {
		t.Skipf("the server has no LZ4: %v", err)
	}
	a := newUser(t, s)
	long := strings.Repeat("All work and no play makes Jack a dull boy. ", 500)
	msg := "From: a@example.org\r\nSubject: " + long[:4000] + "\r\n\r\n" + long + "\r\n"
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(msg)}}); err != nil {
		t.Fatal(err)
	}
	var body, header string
	if err := s.pool.QueryRow(ctx, `SELECT pg_column_compression(b.data), pg_column_compression(c.header)
		FROM contents c JOIN bodies b ON b.hash = c.body_hash`).Scan(&body, &header); err != nil {
		t.Fatal(err)
	}
	if body != "lz4" || header != "lz4" {
		t.Errorf("body compressed with %q, header with %q; want lz4", body, header)
	}
	var set int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_attribute
		WHERE attrelid IN ('bodies'::regclass, 'contents'::regclass) AND attcompression <> ''`).Scan(&set); err != nil {
		t.Fatal(err)
	}
	if set != 0 {
		t.Errorf("%d columns with a compression of their own", set)
	}
}

// TestBodiesShared: the same bytes delivered to two users are stored
// once; when the last message using them goes they wait, pending, for
// the collector.
func TestBodiesShared(t *testing.T) {
	ctx := context.Background()
	s := openURL(t, pgtest.NewDatabase(t), nil)
	defer s.Close()
	count := func() (n, refs int64) {
		t.Helper()
		if err := s.pool.QueryRow(ctx, `SELECT count(*), COALESCE(sum(refs), 0) FROM bodies`).Scan(&n, &refs); err != nil {
			t.Fatal(err)
		}
		return n, refs
	}
	collect := func(want int) {
		t.Helper()
		if n, err := s.CollectBlobs(ctx, 0); err != nil || n != want {
			t.Fatalf("collector deleted %d bodies (%v), want %d", n, err, want)
		}
	}
	msg := []store.NewMessage{{Body: storetest.Msg(1)}}
	var ids []int64
	for _, u := range []string{"u", "v"} {
		if err := s.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
		a, err := s.Account(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		res, err := a.Append(ctx, "INBOX", msg)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.MailboxID)
		if _, err := a.Copy(ctx, res.MailboxID, res.UIDs, "INBOX"); err != nil {
			t.Fatal(err)
		}
	}
	if n, refs := count(); n != 1 || refs != 2 {
		t.Fatalf("after two deliveries of one body: %d bodies, %d references", n, refs)
	}
	u, _ := s.Account(ctx, "u")
	defer u.Close()
	if _, err := u.Expunge(ctx, ids[0], nil, false); err != nil {
		t.Fatal(err)
	}
	if n, refs := count(); n != 1 || refs != 1 {
		t.Fatalf("after one user's expunge: %d bodies, %d references", n, refs)
	}
	v, _ := s.Account(ctx, "v")
	defer v.Close()
	collect(0)
	if _, err := v.Expunge(ctx, ids[1], nil, false); err != nil {
		t.Fatal(err)
	}
	var pending int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM bodies WHERE refs = 0 AND released IS NOT NULL AND data IS NOT NULL`).Scan(&pending); err != nil || pending != 1 {
		t.Fatalf("after the last reference's expunge: %d bodies pending deletion with their bytes (%v), want 1", pending, err)
	}
	if n, err := s.CollectBlobs(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("collector with an hour's grace deleted %d bodies (%v)", n, err)
	}
	collect(1)
	if n, _ := count(); n != 0 {
		t.Fatalf("after the collector: %d bodies", n)
	}
	if _, err := v.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(2)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	if n, refs := count(); n != 1 || refs != 0 {
		t.Fatalf("after the last user went: %d bodies, %d references; want 1 pending", n, refs)
	}
	collect(1)
}

// errRollBack ends a test's transaction without committing it.
var errRollBack = errors.New("roll back")

// TestBodyBackFromPending: a body appended again while pending deletion
// is counted up in place, its searchable text kept and not queued for
// extraction again; one appended after the collector took it is stored
// and queued anew.
func TestBodyBackFromPending(t *testing.T) {
	ctx := context.Background()
	s, a := openUser(t)
	body := storetest.Msg(7)
	hash := bodyHash(body)
	appendMsg := func() store.AppendResult {
		t.Helper()
		res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: body}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	expunge := func(res store.AppendResult) {
		t.Helper()
		if _, err := a.Expunge(ctx, res.MailboxID, res.UIDs, false); err != nil {
			t.Fatal(err)
		}
	}
	// state is the body row's references and bytes, and whether it has
	// text and is queued for it.
	state := func() (refs int64, data []byte, text, queued bool) {
		t.Helper()
		err := s.pool.QueryRow(ctx, `SELECT b.refs, b.data,
				EXISTS (SELECT 1 FROM body_text t WHERE t.hash = b.hash),
				EXISTS (SELECT 1 FROM text_queue q WHERE q.hash = b.hash)
			FROM bodies b WHERE b.hash = $1`, hash).Scan(&refs, &data, &text, &queued)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	expunge(appendMsg())
	if refs, _, text, queued := state(); refs != 0 || text || !queued {
		t.Fatalf("after append and expunge: refs %d, text %v, queued %v; want 0, no text yet, queued", refs, text, queued)
	}
	// The indexer's claim sees the body unused and does not read its bytes.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		batch, err := claimBodies(ctx, tx, 0, 0)
		if err != nil {
			return err
		}
		if len(batch) != 1 {
			return fmt.Errorf("claimed %d bodies, want the one queued", len(batch))
		}
		if batch[0].used != nil || batch[0].data != nil {
			t.Errorf("claim of the unused body: used %v, %d bytes read; want unused, none", batch[0].used, len(batch[0].data))
		}
		return errRollBack // leave it queued
	})
	if !errors.Is(err, errRollBack) {
		t.Fatal(err)
	}
	// The indexer's work, done now rather than 10 s later.
	if _, err := s.pool.Exec(ctx, `WITH q AS (DELETE FROM text_queue WHERE hash = $1)
		INSERT INTO body_text(hash, header, fields, body, mime) VALUES($1, '', '', 'text', '')`, hash); err != nil {
		t.Fatal(err)
	}
	res := appendMsg()
	if refs, data, text, queued := state(); refs != 1 || !bytes.Equal(data, body) || !text || queued {
		t.Fatalf("appended again while pending: refs %d, bytes kept %v, text %v, queued %v; want 1, kept, text kept, not queued",
			refs, bytes.Equal(data, body), text, queued)
	}
	if n, err := s.CollectBlobs(ctx, 0); err != nil || n != 0 {
		t.Fatalf("collector deleted %d bodies in use (%v)", n, err)
	}
	expunge(res)
	if n, err := s.CollectBlobs(ctx, 0); err != nil || n != 1 {
		t.Fatalf("collector deleted %d pending bodies (%v), want 1", n, err)
	}
	appendMsg()
	if refs, data, text, queued := state(); refs != 1 || !bytes.Equal(data, body) || text || !queued {
		t.Fatalf("appended after the collector: refs %d, bytes stored %v, text %v, queued %v; want 1, stored, no text, queued",
			refs, bytes.Equal(data, body), text, queued)
	}
}

// TestCollectorRunsWithBodiesInDB: a server's collector (Options.BlobGC)
// runs without a blob store too, and deletes the unused bodies kept in
// the database once their grace is over.
func TestCollectorRunsWithBodiesInDB(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(t), Options{Logger: quietLogger(), BlobGC: BlobGC{Every: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, res.MailboxID, res.UIDs, false); err != nil {
		t.Fatal(err)
	}
	n := int64(-1)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM bodies`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatalf("%d bodies left 10 s after their last message went", n)
}

// TestBodyDeleteUsesIndex: deleting a body, as the expunge of its last
// reference does, checks the foreign key from contents through an index,
// not by reading every user's contents (schema step 8).
func TestBodyDeleteUsesIndex(t *testing.T) {
	ctx := context.Background()
	s, a := openUser(t)
	var msgs []store.NewMessage
	for i := range 200 {
		msgs = append(msgs, store.NewMessage{Body: storetest.Msg(i)})
	}
	if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE contents`); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// The scans of contents this connection has not yet reported, read
	// inside the transaction (PostgreSQL reports them only outside one).
	scans := func() (seq, idx int64) {
		t.Helper()
		err := tx.QueryRow(ctx, `SELECT COALESCE(sum(seq_scan), 0), COALESCE(sum(idx_scan), 0) FROM pg_stat_xact_user_tables WHERE relname = 'contents'`).Scan(&seq, &idx)
		if err != nil {
			t.Fatal(err)
		}
		return seq, idx
	}
	hash := bodyHash([]byte("a body no content uses"))
	if _, err := tx.Exec(ctx, `INSERT INTO bodies(hash, size, refs, data) VALUES($1, 1, 0, 'x')`, hash); err != nil {
		t.Fatal(err)
	}
	seq0, idx0 := scans()
	if _, err := tx.Exec(ctx, `DELETE FROM bodies WHERE hash = $1`, hash); err != nil {
		t.Fatal(err)
	}
	seq1, idx1 := scans()
	if seq1 != seq0 || idx1 == idx0 {
		t.Fatalf("deleting a body scanned contents %d times sequentially, %d times by index", seq1-seq0, idx1-idx0)
	}
}
