package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// conformanceWithBlobs runs storetest with bodies in the blob store that
// blobsFor returns for a store directory (the same one on a reopen).
func conformanceWithBlobs(t *testing.T, blobsFor func(t *testing.T, dir string) blob.Store) {
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
		s, err := Open(context.Background(), url, Options{Notifier: n, Logger: quietLogger(), Blobs: blobsFor(t, dir)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func fileBlobs(t *testing.T, dir string) blob.Store {
	t.Helper()
	b, err := blob.OpenFile(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConformanceFileBlobs: storetest with bodies in a file blob store.
func TestConformanceFileBlobs(t *testing.T) {
	conformanceWithBlobs(t, fileBlobs)
}

// TestConformanceS3Blobs: storetest with bodies in a private SeaweedFS
// S3 server (one bucket, a prefix per store).
func TestConformanceS3Blobs(t *testing.T) {
	cfg := s3test.NewBucket(t)
	var mu sync.Mutex
	prefixes := map[string]string{}
	conformanceWithBlobs(t, func(t *testing.T, dir string) blob.Store {
		mu.Lock()
		p, ok := prefixes[dir]
		if !ok {
			p = fmt.Sprintf("s%d/", len(prefixes))
			prefixes[dir] = p
		}
		mu.Unlock()
		c := cfg
		c.Prefix = p
		b, err := blob.OpenS3(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// blobFixture is a store with a file blob store and one user "u".
type blobFixture struct {
	t     *testing.T
	s     *Store
	blobs blob.Store
	acct  store.Account
}

func newBlobFixture(t *testing.T) *blobFixture {
	t.Helper()
	blobs, err := blob.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &blobFixture{t: t, s: openBlobNode(t, pgtest.NewDatabase(t), blobs), blobs: blobs}
	f.acct = f.user("u")
	return f
}

// openBlobNode opens a Store (a node) on the database url with bodies
// in blobs, closed by the test's cleanup.
func openBlobNode(t *testing.T, url string, blobs blob.Store) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Logger: quietLogger(), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (f *blobFixture) user(name string) store.Account {
	f.t.Helper()
	ctx := context.Background()
	if err := f.s.CreateUser(ctx, name, "h"); err != nil {
		f.t.Fatal(err)
	}
	a, err := f.s.Account(ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { a.Close() })
	return a
}

// uniqueBody is a message no other test delivers.
func uniqueBody() []byte {
	var r [8]byte
	rand.Read(r[:])
	return fmt.Appendf(nil, "Subject: blob %x\r\nMessage-ID: <%x@test>\r\n\r\nbody %x\r\n", r, r, r)
}

func (f *blobFixture) append(a store.Account, body []byte) store.AppendResult {
	f.t.Helper()
	res, err := a.Append(context.Background(), "INBOX", []store.NewMessage{{Body: body}})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// expunge removes the message an Append stored.
func (f *blobFixture) expunge(a store.Account, res store.AppendResult) {
	f.t.Helper()
	if _, err := a.Expunge(context.Background(), res.MailboxID, res.UIDs, false); err != nil {
		f.t.Fatal(err)
	}
}

// row returns the body's references and whether its row exists.
func (f *blobFixture) row(body []byte) (refs int64, exists bool) {
	f.t.Helper()
	err := f.s.pool.QueryRow(context.Background(), `SELECT refs FROM bodies WHERE hash = $1`, bodyHash(body)).Scan(&refs)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return refs, true
}

// inRow reports whether the body's row holds its bytes.
func (f *blobFixture) inRow(body []byte) bool {
	f.t.Helper()
	var held bool
	if err := f.s.pool.QueryRow(context.Background(), `SELECT data IS NOT NULL FROM bodies WHERE hash = $1`, bodyHash(body)).Scan(&held); err != nil {
		f.t.Fatal(err)
	}
	return held
}

// hasObject reports whether the blob store holds body.
func (f *blobFixture) hasObject(body []byte) bool {
	f.t.Helper()
	_, err := f.blobs.Stat(context.Background(), blobKey(bodyHash(body)))
	if errors.Is(err, blob.ErrNotFound) {
		return false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return true
}

// readable asserts that the message's body reads back as body.
func (f *blobFixture) readable(a store.Account, res store.AppendResult, body []byte) {
	f.t.Helper()
	b, err := a.OpenBody(context.Background(), res.MailboxID, res.UIDs[0])
	if err != nil {
		f.t.Fatalf("a committed message's body: %v", err)
	}
	defer b.Close()
	got, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	if err != nil || string(got) != string(body) {
		f.t.Fatalf("body read back: %q, %v", got, err)
	}
}

func (f *blobFixture) collect(grace time.Duration) int {
	f.t.Helper()
	n, err := f.s.CollectBlobs(context.Background(), grace)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// TestBlobsSharedAndCollected: one body delivered to three users is one
// object with three references and no bytes in the database; once unused
// it stays for the grace period and is then deleted with its row.
func TestBlobsSharedAndCollected(t *testing.T) {
	f := newBlobFixture(t)
	body := uniqueBody()
	accts := []store.Account{f.acct, f.user("v"), f.user("w")}
	var results []store.AppendResult
	for _, a := range accts {
		results = append(results, f.append(a, body))
	}
	if refs, _ := f.row(body); refs != 3 {
		t.Fatalf("refs %d after three deliveries", refs)
	}
	var inline int
	if err := f.s.pool.QueryRow(context.Background(), `SELECT count(*) FROM bodies WHERE data IS NOT NULL`).Scan(&inline); err != nil || inline != 0 {
		t.Fatalf("%d bodies with bytes in the database (%v)", inline, err)
	}
	n := 0
	f.blobs.List(context.Background(), func(string, int64, time.Time) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d objects for one body", n)
	}
	for i, a := range accts {
		f.readable(a, results[i], body)
	}
	for i, a := range accts[:2] {
		f.expunge(a, results[i])
	}
	if f.collect(0) != 0 || !f.hasObject(body) {
		t.Fatal("collected a body one message still uses")
	}
	f.readable(accts[2], results[2], body)
	if err := f.s.DeleteUser(context.Background(), "w"); err != nil {
		t.Fatal(err)
	}
	if refs, ok := f.row(body); !ok || refs != 0 {
		t.Fatalf("unused body: row %v, refs %d; want pending", ok, refs)
	}
	if f.collect(time.Hour) != 0 || !f.hasObject(body) {
		t.Fatal("collected within the grace period")
	}
	if f.collect(0) != 1 || f.hasObject(body) {
		t.Fatal("unused body not collected after the grace period")
	}
	// Its row stays, its object's name retired, until the fence has
	// passed since the DELETE.
	var gone bool
	if err := f.s.pool.QueryRow(context.Background(), `SELECT object_gone AND delete_sent IS NOT NULL FROM bodies WHERE hash = $1`, bodyHash(body)).Scan(&gone); err != nil || !gone {
		t.Fatalf("row of a deleted object within the fence: gone %v (%v)", gone, err)
	}
	if f.collect(0) != 0 {
		t.Fatal("collected again")
	}
	if _, ok := f.row(body); !ok {
		t.Fatal("row of a deleted object dropped within the fence")
	}
	f.s.fence = 0
	if f.collect(0) != 0 {
		t.Fatal("dropping a row counted as a deletion")
	}
	if _, ok := f.row(body); ok {
		t.Fatal("row of a collected body left")
	}
}

// TestBlobRevivedBeforeCollection: a body unused and then delivered again
// is not collected.
func TestBlobRevivedBeforeCollection(t *testing.T) {
	f := newBlobFixture(t)
	body := uniqueBody()
	res := f.append(f.acct, body)
	f.expunge(f.acct, res)
	res = f.append(f.acct, body)
	if f.collect(0) != 0 {
		t.Fatal("collected a body delivered again")
	}
	f.readable(f.acct, res, body)
}

// TestBlobCollectedBetweenPutAndCommit: the collector deletes a pending
// body's object after an Append put it and before the Append's
// transaction. Within the fence the Append finds the row marked and keeps
// the bytes in it; once the fence has passed the row is gone, and the
// Append inserts it anew and puts the object again. Either way the
// committed message is readable.
func TestBlobCollectedBetweenPutAndCommit(t *testing.T) {
	for _, fenced := range []bool{true, false} {
		t.Run(fmt.Sprintf("fenced=%v", fenced), func(t *testing.T) {
			f := newBlobFixture(t)
			if !fenced {
				f.s.fence = 0
			}
			body := uniqueBody()
			res := f.append(f.acct, body)
			f.expunge(f.acct, res)
			f.s.appendHook = func() {
				f.s.appendHook = nil
				if n := f.collect(0); n != 1 {
					t.Errorf("collector deleted %d", n)
				}
			}
			res = f.append(f.acct, body)
			f.readable(f.acct, res, body)
			if f.inRow(body) != fenced || f.hasObject(body) == fenced {
				t.Fatalf("bytes in the row %v, object %v", f.inRow(body), f.hasObject(body))
			}
		})
	}
}

// TestBlobCollectorCrashAfterDelete: a collector that deleted an object
// and died before recording it leaves the row marked with no object; an
// Append that put the object before that deletion and takes the row back
// keeps the bytes in the row.
func TestBlobCollectorCrashAfterDelete(t *testing.T) {
	f := newBlobFixture(t)
	body := uniqueBody()
	res := f.append(f.acct, body)
	f.expunge(f.acct, res)
	crash := errors.New("crash after delete")
	f.s.gcHook = func(_ []byte, deleted bool) error {
		if deleted {
			return crash
		}
		return nil
	}
	f.s.appendHook = func() {
		f.s.appendHook = nil
		if _, err := f.s.CollectBlobs(context.Background(), 0); !errors.Is(err, crash) {
			t.Errorf("collector: %v", err)
		}
		if refs, ok := f.row(body); !ok || refs != 0 || f.hasObject(body) {
			t.Errorf("after the crash: row %v refs %d object %v; want a pending row without object", ok, refs, f.hasObject(body))
		}
	}
	res = f.append(f.acct, body)
	f.s.gcHook = nil
	f.readable(f.acct, res, body)
	if !f.inRow(body) {
		t.Fatal("the body came back to an object whose deletion was sent")
	}
	if f.collect(0) != 0 {
		t.Fatal("collected a body in use")
	}
	f.readable(f.acct, res, body)
}

// TestBlobAppendDuringDelete: an Append of a body whose row the collector
// has marked, while its DELETE is on the way, neither waits for the
// collector nor uses the object: the DELETE lands after the Append
// committed and the message still reads back. A second collection leaves
// the body, in use, alone.
func TestBlobAppendDuringDelete(t *testing.T) {
	f := newBlobFixture(t)
	body := uniqueBody()
	res := f.append(f.acct, body)
	f.expunge(f.acct, res)
	f.s.gcHook = func(_ []byte, deleted bool) error {
		if !deleted {
			f.s.gcHook = nil
			res = f.append(f.acct, body)
		}
		return nil
	}
	if n := f.collect(0); n != 1 {
		t.Fatalf("collector deleted %d", n)
	}
	if f.hasObject(body) || !f.inRow(body) {
		t.Fatalf("object %v, bytes in the row %v", f.hasObject(body), f.inRow(body))
	}
	f.readable(f.acct, res, body)
	if f.collect(0) != 0 {
		t.Fatal("collected a body in use")
	}
	f.readable(f.acct, res, body)
	// Unused again, the row with its bytes goes once the fence has passed.
	f.expunge(f.acct, res)
	if f.collect(0) != 0 {
		t.Fatal("dropped a body within the fence of its object's deletion")
	}
	f.s.fence = 0
	if f.collect(0) != 1 {
		t.Fatal("a body held in its row not collected")
	}
	if _, ok := f.row(body); ok {
		t.Fatal("row left")
	}
}

// waitForLockWaiter waits until a session of the test's database waits
// for a lock.
func waitForLockWaiter(t *testing.T, s *Store) {
	t.Helper()
	for range 3000 {
		var n int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no session ever waited for the lock")
}

// TestBlobOrphansSwept: an object put by an Append whose transaction
// failed is found by the sweep, kept for the grace period, then deleted;
// objects in use are not touched.
func TestBlobOrphansSwept(t *testing.T) {
	f := newBlobFixture(t)
	ctx := context.Background()
	orphan, kept := uniqueBody(), uniqueBody()
	res := f.append(f.acct, kept)
	if _, err := f.acct.Append(ctx, "No such mailbox", []store.NewMessage{{Body: orphan}}); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("append to a missing mailbox: %v", err)
	}
	if !f.hasObject(orphan) {
		t.Fatal("the failed Append put no object (test assumption)")
	}
	if n, err := f.s.SweepBlobs(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep within the grace period: %d, %v", n, err)
	}
	if n, err := f.s.SweepBlobs(ctx, 0); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want the one orphan", n, err)
	}
	if f.collect(time.Hour) != 0 || f.collect(0) != 1 {
		t.Fatal("the swept orphan was not collected after its grace period only")
	}
	if f.hasObject(orphan) || !f.hasObject(kept) {
		t.Fatal("wrong objects deleted")
	}
	f.readable(f.acct, res, kept)
}

// TestBlobCollectorRacesDeliveries: appends, expunges and the collector
// (grace 0) run at once on a few shared bodies; afterwards every
// committed message reads back.
func TestBlobCollectorRacesDeliveries(t *testing.T) {
	f := newBlobFixture(t)
	ctx := context.Background()
	bodies := [][]byte{uniqueBody(), uniqueBody(), uniqueBody()}
	accts := []store.Account{f.acct, f.user("v"), f.user("w")}
	stop := make(chan struct{})
	var gc sync.WaitGroup
	gc.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := f.s.CollectBlobs(ctx, 0); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	kept := make([][]store.AppendResult, len(accts))
	for i, a := range accts {
		wg.Go(func() {
			for round := range 30 {
				res := f.append(a, bodies[(i+round)%len(bodies)])
				if round%3 != 2 {
					f.expunge(a, res)
					continue
				}
				kept[i] = append(kept[i], res)
			}
		})
	}
	wg.Wait()
	close(stop)
	gc.Wait()
	for i, a := range accts {
		for _, res := range kept[i] {
			b, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[0])
			if err != nil {
				t.Fatalf("user %d UID %d: %v", i, res.UIDs[0], err)
			}
			b.Close()
		}
	}
	if f.collect(0) != 0 {
		t.Fatal("collected bodies still in use")
	}
}

// countingBlobs counts the Puts that reach a real blob store.
type countingBlobs struct {
	blob.Store
	puts atomic.Int64
}

func (c *countingBlobs) Put(ctx context.Context, key string, data []byte) error {
	c.puts.Add(1)
	return c.Store.Put(ctx, key, data)
}

// TestBlobUploadedOnce: a body delivered to many users is put once while
// a message uses it. Once unused and collected it comes back in its row
// (not put) within the fence, and is put again after it.
func TestBlobUploadedOnce(t *testing.T) {
	f := newBlobFixture(t)
	counted := &countingBlobs{Store: f.blobs}
	f.s.opts.Blobs = counted
	body := uniqueBody()
	var results []store.AppendResult
	accts := []store.Account{f.acct}
	for i := range 4 {
		accts = append(accts, f.user(fmt.Sprintf("r%d", i)))
	}
	for _, a := range accts {
		results = append(results, f.append(a, body))
	}
	if n := counted.puts.Load(); n != 1 {
		t.Fatalf("%d puts for one body delivered to %d users", n, len(accts))
	}
	for i, a := range accts {
		f.expunge(a, results[i])
	}
	if f.collect(0) != 1 {
		t.Fatal("not collected")
	}
	res := f.append(f.acct, body)
	if n := counted.puts.Load(); n != 1 || !f.inRow(body) {
		t.Fatalf("%d puts after the body came back within the fence; bytes in the row %v", n, f.inRow(body))
	}
	f.readable(f.acct, res, body)
	f.expunge(f.acct, res)
	f.s.fence = 0
	if f.collect(0) != 1 {
		t.Fatal("not collected")
	}
	res = f.append(f.acct, body)
	if n := counted.puts.Load(); n != 2 || f.inRow(body) {
		t.Fatalf("%d puts after the body came back after the fence; bytes in the row %v", n, f.inRow(body))
	}
	f.readable(f.acct, res, body)
}

// TestCheckBlobObjects: tern check reports a body in use whose object is
// missing or has the wrong size, and nothing for unused ones.
func TestCheckBlobObjects(t *testing.T) {
	f := newBlobFixture(t)
	ctx := context.Background()
	gone, short, unused := uniqueBody(), uniqueBody(), uniqueBody()
	for _, b := range [][]byte{gone, short, unused} {
		f.append(f.acct, b)
	}
	if p, err := f.s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("check: %q %v", p, err)
	}
	res, err := f.acct.Append(ctx, "INBOX", []store.NewMessage{{Body: unused}})
	if err != nil {
		t.Fatal(err)
	}
	f.expunge(f.acct, res)
	f.expunge(f.acct, store.AppendResult{MailboxID: res.MailboxID, UIDs: []uint32{3}})
	for _, b := range [][]byte{gone, short, unused} {
		if err := f.blobs.Delete(ctx, blobKey(bodyHash(b))); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.blobs.Put(ctx, blobKey(bodyHash(short)), short[:10]); err != nil {
		t.Fatal(err)
	}
	p, err := f.s.Check(ctx, true)
	if err != nil || len(p) != 2 || !strings.Contains(p[0]+p[1], "missing") || !strings.Contains(p[0]+p[1], "has 10 bytes") {
		t.Fatalf("check: %q %v", p, err)
	}
	// A body in use whose object's deletion was sent breaks the rule
	// that keeps late DELETEs harmless.
	if _, err := f.s.pool.Exec(ctx, `UPDATE bodies SET delete_sent = now() WHERE hash = $1`, bodyHash(gone)); err != nil {
		t.Fatal(err)
	}
	if p, err = f.s.Check(ctx, false); err != nil || len(p) != 3 || !strings.Contains(strings.Join(p, "\n"), "a deletion of its object was sent") {
		t.Fatalf("check: %q %v", p, err)
	}
}

// TestLateS3DeleteAfterRevival: node A's collector sends a DELETE that
// reaches S3 only after A gave up on it (held by a proxy: a queue in a
// load balancer, a node that died with the request sent). Meanwhile node
// B delivers the same body again. When the DELETE lands, the committed
// message still reads back (its bytes are in its row), on both nodes.
func TestLateS3DeleteAfterRevival(t *testing.T) {
	ctx := context.Background()
	cfg := s3test.NewPrefix(t)
	direct, err := blob.OpenS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	viaProxy, proxy := s3test.Proxied(t, cfg)
	viaProxy.Timeout, viaProxy.Attempts = 500*time.Millisecond, 1
	collectorBlobs, err := blob.OpenS3(ctx, viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDatabase(t)
	nodeA, nodeB := openBlobNode(t, url, collectorBlobs), openBlobNode(t, url, direct)
	f := &blobFixture{t: t, s: nodeB, blobs: direct}
	acct := f.user("u")
	body := uniqueBody()
	f.expunge(acct, f.append(acct, body))

	proxy.HoldDeletes()
	if n, err := nodeA.CollectBlobs(ctx, 0); err == nil {
		t.Fatalf("the held DELETE did not fail the collector (test assumption): %d deleted", n)
	}
	res := f.append(acct, body)
	if proxy.SendHeld() == 0 {
		t.Fatal("no DELETE held (test assumption)")
	}
	if f.hasObject(body) {
		t.Fatal("after the late DELETE the object is still there (test assumption)")
	}
	for _, node := range []*Store{nodeB, nodeA} {
		a, err := node.Account(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		f.readable(a, res, body)
		a.Close()
	}
	// The collector on A, the store answering again, leaves it alone.
	if n, err := nodeA.CollectBlobs(ctx, 0); err != nil || n != 0 {
		t.Fatalf("collector after the late DELETE: %d, %v", n, err)
	}
}
