package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
)

// pausingBlobs is a real blob store whose Stat of chosen keys stops until
// the test lets it go on: a write paused there (settleBlobs) holds its
// user's lock and the body rows its batch touched.
type pausingBlobs struct {
	blob.Store
	mu     sync.Mutex
	pauses map[string]*statPause
}

type statPause struct {
	reached, release chan struct{}
	once             sync.Once
}

func (p *pausingBlobs) pauseOn(body []byte) *statPause {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pauses == nil {
		p.pauses = map[string]*statPause{}
	}
	ps := &statPause{reached: make(chan struct{}), release: make(chan struct{})}
	p.pauses[blobKey(bodyHash(body))] = ps
	return ps
}

func (p *pausingBlobs) Stat(ctx context.Context, key string) (int64, error) {
	p.mu.Lock()
	ps := p.pauses[key]
	p.mu.Unlock()
	if ps != nil {
		ps.once.Do(func() { close(ps.reached) })
		<-ps.release
	}
	return p.Store.Stat(ctx, key)
}

// waitForQueryWaiting waits until a session runs a statement containing
// text and waits for a lock.
func waitForQueryWaiting(t *testing.T, s *Store, text string) {
	t.Helper()
	for range 3000 {
		if queryWaiting(t, s, text) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no session ever waited for a lock in %q", text)
}

// queryWaiting reports whether a session runs a statement containing
// text and waits for a lock.
func queryWaiting(t *testing.T, s *Store, text string) bool {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' AND strpos(query, $1) > 0`, text).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestCheckRepairBesideNewUsersWrite: tern check --repair "may run while
// nodes serve", taking every user's lock first. A user created after
// that lock statement started is not locked; its APPEND of a body
// another user has (refs 1 -> 2, uncommitted) holds the body's row. The
// repair's old UPDATE bodies SET refs = (SELECT count(*) FROM contents
// ...) waited for that row, then re-read it under READ COMMITTED with
// its statement's snapshot for the count, which did not see the new
// contents row: refs = 1 while two contents used the body, and once the
// other user expunged, the collector deleted the object of a committed
// message. Now the repair locks the rows it will set first (only those
// whose committed count is wrong) and sets them in a later statement.
// (A review's finding, session 41.)
func TestCheckRepairBesideNewUsersWrite(t *testing.T) {
	f := newBlobFixture(t)
	ctx := context.Background()
	pb := &pausingBlobs{Store: f.blobs}
	f.s.opts.Blobs = pb

	shared, drifted := uniqueBody(), uniqueBody()
	resU := f.append(f.acct, shared)
	f.append(f.acct, drifted)
	// Something for the repair to repair (why one runs it).
	if _, err := f.s.pool.Exec(ctx, `UPDATE bodies SET refs = refs + 1 WHERE hash = $1`, bodyHash(drifted)); err != nil {
		t.Fatal(err)
	}

	// u is writing (an APPEND of a new body, paused in settleBlobs with
	// u's lock held): Check's lock statement waits for it, its snapshot
	// of the users taken.
	w := uniqueBody()
	pw := pb.pauseOn(w)
	uDone := make(chan error, 1)
	go func() {
		_, err := f.acct.Append(ctx, "INBOX", []store.NewMessage{{Body: w}})
		uDone <- err
	}()
	<-pw.reached
	type checkResult struct {
		p   []string
		err error
	}
	checked := make(chan checkResult, 1)
	go func() {
		p, err := f.s.Check(ctx, true)
		checked <- checkResult{p, err}
	}()
	waitForQueryWaiting(t, f.s, "FROM users ORDER BY id FOR NO KEY UPDATE")

	// A user created now (LMTP delivery to a freshly provisioned
	// mailbox, tern store copy --user into a live cluster) delivers the
	// shared body with a new one; paused on the new one's verification,
	// its transaction holds shared's row at refs 2 and its contents row.
	v := f.user("v")
	z := uniqueBody()
	pz := pb.pauseOn(z)
	type appendResult struct {
		res store.AppendResult
		err error
	}
	vDone := make(chan appendResult, 1)
	go func() {
		res, err := v.Append(ctx, "INBOX", []store.NewMessage{{Body: shared}, {Body: z}})
		vDone <- appendResult{res, err}
	}()
	<-pz.reached

	// u's write commits; Check locks u (not v), finds the drift, and its
	// repair waits for shared's row.
	close(pw.release)
	if err := <-uDone; err != nil {
		t.Fatal(err)
	}
	// The repair either waits for shared's row (in its UPDATE, before
	// the fix) or, since shared's committed count is right, finishes
	// without it; then v commits.
	var cr checkResult
	done := false
	for i := 0; !done && !queryWaiting(t, f.s, "SET refs = (SELECT count(*) FROM contents"); i++ {
		select {
		case cr = <-checked:
			done = true
		case <-time.After(10 * time.Millisecond):
		}
		if i == 3000 {
			close(pz.release)
			t.Fatal("check neither finished nor waited for the shared body's row")
		}
	}
	close(pz.release)
	vr := <-vDone
	if vr.err != nil {
		t.Fatal(vr.err)
	}
	if !done {
		cr = <-checked
	}
	if cr.err != nil {
		t.Fatalf("check: %v", cr.err)
	}

	refs, _ := f.row(shared)
	var used int64
	if err := f.s.pool.QueryRow(ctx, `SELECT count(*) FROM contents WHERE body_hash = $1`, bodyHash(shared)).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if refs != used {
		t.Errorf("after check --repair: shared body refs = %d, %d contents use it", refs, used)
	}

	// The consequence: u expunges its copy; the collector deletes the
	// object v's committed message still uses.
	f.expunge(f.acct, resU)
	_, gcErr := f.s.CollectBlobs(ctx, 0)
	if gcErr != nil {
		t.Errorf("collector: %v", gcErr)
	}
	if !f.hasObject(shared) {
		t.Errorf("the object of a body a committed message uses was deleted")
	}
	if _, gcErr := f.s.CollectBlobs(ctx, 0); gcErr != nil {
		t.Errorf("collector, second run (wedged on the same row?): %v", gcErr)
	}
	b, err := v.OpenBody(ctx, vr.res.MailboxID, vr.res.UIDs[0])
	if err != nil {
		t.Fatalf("v's committed message: %v", err)
	}
	b.Close()
}

// TestCollectorSkipsBodyStillUsed: a body whose count says unused (0)
// while a content still names it, as after a counting error, is not
// collected: before, the collector deleted its object first, then failed
// on the row's foreign key, rolled back, and failed the same way at every
// later run, so nothing else was ever collected.
func TestCollectorSkipsBodyStillUsed(t *testing.T) {
	f := newBlobFixture(t)
	ctx := context.Background()
	used, unused := uniqueBody(), uniqueBody()
	res := f.append(f.acct, used)
	f.expunge(f.acct, f.append(f.acct, unused))
	if _, err := f.s.pool.Exec(ctx, `UPDATE bodies SET refs = 0, released = now() - interval '1 hour' WHERE hash = ANY($1)`,
		[][]byte{bodyHash(used), bodyHash(unused)}); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		if _, err := f.s.CollectBlobs(ctx, time.Minute); err != nil {
			t.Fatalf("collector run %d: %v", run+1, err)
		}
	}
	if !f.hasObject(used) {
		t.Fatal("the object of a body a message uses was deleted")
	}
	f.readable(f.acct, res, used)
	if f.hasObject(unused) {
		t.Error("the unused body's object was not deleted")
	}
	f.s.fence = 0
	if _, err := f.s.CollectBlobs(ctx, time.Minute); err != nil {
		t.Fatalf("collector after the fence: %v", err)
	}
	if _, exists := f.row(unused); exists {
		t.Error("the unused body's row was not dropped after the fence")
	}
	if _, exists := f.row(used); !exists {
		t.Error("the row of a body a message uses was dropped")
	}
}

// TestBlobDeleteAfterWindowNotSent: a collector whose DELETE is not sent
// within its batch's window (a slow store before it, a paused node)
// does not send it at all. Meanwhile another node found the row marked,
// took the body back into the row, dropped that row once the fence had
// passed since the mark, and stored the body again under the object's
// name: a DELETE sent now would take a committed message's body. (Found
// by a review: the fence counted from the mark, and the k-th DELETE of a
// batch could go out long after it.)
func TestBlobDeleteAfterWindowNotSent(t *testing.T) {
	ctx := context.Background()
	blobs, err := blob.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDatabase(t)
	nodeA, nodeB := openBlobNode(t, url, blobs), openBlobNode(t, url, blobs)
	const window, fence = 100 * time.Millisecond, 300 * time.Millisecond
	nodeA.deleteWindow, nodeA.fence, nodeB.fence = window, fence, fence
	f := &blobFixture{t: t, s: nodeB, blobs: blobs}
	acct := f.user("u")
	body := uniqueBody()
	f.expunge(acct, f.append(acct, body))

	var res store.AppendResult
	nodeA.gcHook = func(_ []byte, deleted bool) error {
		if deleted {
			return nil
		}
		// Before A's DELETE goes: B brings the body back (into its
		// row), it goes again, and once the fence has passed B drops
		// the row and stores the body anew.
		f.expunge(acct, f.append(acct, body))
		time.Sleep(2 * fence)
		if n, err := nodeB.CollectBlobs(ctx, 0); err != nil || n != 1 {
			t.Errorf("node B's collector: %d, %v; want the row with its bytes dropped", n, err)
		}
		res = f.append(acct, body)
		if f.inRow(body) {
			t.Error("the new row holds the bytes (test assumption)")
		}
		return nil
	}
	_, gcErr := nodeA.CollectBlobs(ctx, 0)
	if !f.hasObject(body) {
		t.Fatal("the object of a committed message was deleted")
	}
	f.readable(acct, res, body)
	if !errors.Is(gcErr, errDeleteWindow) {
		t.Fatalf("node A's collector: %v; want its window closed", gcErr)
	}
}

// refusingKeys fails every DELETE of the keys it holds (objects the
// store will not delete: a retention lock, a permission).
type refusingKeys struct {
	blob.Store
	keys map[string]bool
}

func (r *refusingKeys) Delete(ctx context.Context, key string) error {
	if r.keys[key] {
		return errors.New("AccessDenied (test)")
	}
	return r.Store.Delete(ctx, key)
}

// TestBlobFailingDeleteKeepsDropping: an object whose DELETE always fails
// does not keep the collector from dropping the rows whose fence has
// passed (before, the run returned at the first failed DELETE, so a node
// running every 10 minutes never dropped a row again). (Found by a
// review.)
func TestBlobFailingDeleteKeepsDropping(t *testing.T) {
	f := newBlobFixture(t)
	ctx := context.Background()
	stuck, held := uniqueBody(), uniqueBody()
	f.s.opts.Blobs = &refusingKeys{Store: f.blobs, keys: map[string]bool{blobKey(bodyHash(stuck)): true}}
	f.expunge(f.acct, f.append(f.acct, stuck))
	f.expunge(f.acct, f.append(f.acct, held))
	// held's object goes and the body comes back, into its row, and
	// goes again: a pending row holding its bytes.
	var once sync.Once
	f.s.gcHook = func(hash []byte, deleted bool) error {
		if deleted && bytes.Equal(hash, bodyHash(held)) {
			once.Do(func() { f.expunge(f.acct, f.append(f.acct, held)) })
		}
		return nil
	}
	if _, err := f.s.CollectBlobs(ctx, 0); err == nil {
		t.Fatal("the refused DELETE did not fail the run (test assumption)")
	}
	f.s.gcHook = nil
	if !f.inRow(held) {
		t.Fatal("the body did not come back into its row (test assumption)")
	}
	// An hour later: the failing row is marked and tried again, and the
	// held row's fence has passed.
	if _, err := f.s.pool.Exec(ctx, `UPDATE bodies SET delete_sent = delete_sent - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CollectBlobs(ctx, 0); err == nil {
		t.Fatal("the refused DELETE did not fail the run (test assumption)")
	}
	if _, ok := f.row(held); ok {
		t.Fatal("a row holding its bytes, past its fence, was not dropped beside a failing DELETE")
	}
	if _, ok := f.row(stuck); !ok || !f.hasObject(stuck) {
		t.Fatal("the row or object of the body whose DELETE fails went")
	}
}

// TestCollectorReadsFewRows: among 20,000 bodies in use and thousands
// the collector has nothing to do with yet (objects deleted within the
// fence, bodies unused for less than the grace period), each of its
// statements reads about the rows it takes, and a few dozen others
// (DELETEs that failed in the last minutes, bodies back in their rows
// within the fence), not all rows at zero references. (A review found
// that the first version of the fence read every row within it at every
// batch.)
func TestCollectorReadsFewRows(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := openURL(t, url, nil)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	// kind, count, refs, released, delete_sent, object_gone, bytes held
	if _, err := s.pool.Exec(ctx, `INSERT INTO bodies(hash, size, refs, released, delete_sent, object_gone, data)
		SELECT sha256(convert_to(k.kind || i::text, 'UTF8')), 10, k.refs, now() - k.age, now() - k.marked, k.gone,
			CASE WHEN k.held THEN 'x'::bytea END
		FROM (VALUES
			('used', 20000, 1, NULL::interval, NULL::interval, false, false),
			('gone', 3000, 0, interval '2 hours', interval '10 minutes', true, false),
			('held within grace', 3000, 0, interval '1 second', NULL, false, true),
			('within grace', 3000, 0, interval '1 second', NULL, false, false),
			('failed lately', 50, 0, interval '2 hours', interval '1 minute', false, false),
			('held within fence', 50, 0, interval '2 hours', interval '10 minutes', false, true),
			('due', 5, 0, interval '2 hours', NULL, false, false)
		) AS k(kind, n, refs, age, marked, gone, held), generate_series(1, k.n) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE bodies`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	grace, fence, window := time.Hour.Seconds(), deleteFence.Seconds(), deleteWindow.Seconds()
	for _, c := range []struct {
		name, stmt string
		args       []any
	}{
		{"mark for deletion", markForDeletionSQL, []any{grace, gcBatch, window}},
		{"drop rows holding bytes", dropRowsSQL(pickHeldSQL), []any{grace, gcBatch, fence}},
		{"drop rows of deleted objects", dropRowsSQL(pickGoneSQL), []any{gcBatch, fence}},
	} {
		if read := explainRowsRead(t, conn, []string{"bodies"}, c.stmt, c.args...); read > 200 {
			t.Errorf("%s: read %d rows of bodies", c.name, read)
		}
	}
}

// TestBlobFailingDeletesStarveNoOthers: a batch's worth of objects whose
// DELETE always fails, released before any other body, does not keep
// the collector from deleting the others: failed rows go to the back of
// the queue. (Found by a review: they were taken first again at every
// run, and a failed DELETE ended the step.)
func TestBlobFailingDeletesStarveNoOthers(t *testing.T) {
	f := newBlobFixture(t)
	ctx := context.Background()
	refusing := &refusingKeys{Store: f.blobs, keys: map[string]bool{}}
	f.s.opts.Blobs = refusing
	var stuck [][]byte
	for i := range gcBatch {
		h := bodyHash(fmt.Appendf(nil, "stuck %d %x", i, bodyHash(uniqueBody())))
		stuck = append(stuck, h)
		refusing.keys[blobKey(h)] = true
	}
	if _, err := f.s.pool.Exec(ctx, `INSERT INTO bodies(hash, size, refs, released)
		SELECT h, 10, 0, now() - interval '2 hours' FROM unnest($1::bytea[]) AS h`, stuck); err != nil {
		t.Fatal(err)
	}
	due := uniqueBody()
	f.expunge(f.acct, f.append(f.acct, due))
	if _, err := f.s.pool.Exec(ctx, `UPDATE bodies SET released = now() - interval '1 hour' WHERE hash = $1`, bodyHash(due)); err != nil {
		t.Fatal(err)
	}
	// Three runs of a node's collector, 10 minutes apart.
	for run := range 3 {
		if _, err := f.s.CollectBlobs(ctx, time.Minute); err == nil {
			t.Fatalf("run %d: the refused DELETEs did not fail the run (test assumption)", run+1)
		}
		if _, err := f.s.pool.Exec(ctx, `UPDATE bodies SET delete_sent = delete_sent - interval '10 minutes',
			released = released - interval '10 minutes' WHERE refs = 0`); err != nil {
			t.Fatal(err)
		}
	}
	if f.hasObject(due) {
		t.Fatal("an unused body's object was never deleted beside objects whose DELETE always fails")
	}
}

// TestMigrationFromFirstStep12: a database migrated by the first version
// of schema step 12 (d31c96d, the two columns only; the indexes came in
// a later commit, now step 13) gets the collector's indexes at Open.
// (Found by a review: the indexes had been added to step 12 itself.)
func TestMigrationFromFirstStep12(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE tern_schema(version integer NOT NULL); INSERT INTO tern_schema VALUES(12)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:11] {
		if _, err := conn.Exec(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE bodies ADD COLUMN delete_sent timestamptz;
		ALTER TABLE bodies ADD COLUMN object_gone boolean NOT NULL DEFAULT false`); err != nil {
		t.Fatal(err)
	}
	s := openURL(t, url, nil)
	defer s.Close()
	var have []string
	rows, err := s.pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = 'bodies' AND indexname LIKE 'bodies\_%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	if have, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if want := []string{"bodies_gone", "bodies_held", "bodies_pkey", "bodies_to_delete"}; !slices.Equal(have, want) {
		t.Fatalf("indexes of bodies: %v, want %v", have, want)
	}
}

// TestBlobRecordsOnlyItsOwnMark: a collector records an object as gone
// only on a row that still carries its own mark. A row marked again
// meanwhile (another collector, after the window; or a newer row of the
// same body) waits for that mark's word: recorded gone, it would be
// dropped after the fence with no DELETE of its own. (Found by a
// review.)
func TestBlobRecordsOnlyItsOwnMark(t *testing.T) {
	f := newBlobFixture(t)
	ctx := context.Background()
	body := uniqueBody()
	f.expunge(f.acct, f.append(f.acct, body))
	f.s.gcHook = func(hash []byte, deleted bool) error {
		if deleted {
			if _, err := f.s.pool.Exec(ctx, `UPDATE bodies SET delete_sent = delete_sent + interval '1 second' WHERE hash = $1`, hash); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	if n, err := f.s.CollectBlobs(ctx, 0); err != nil || n != 1 {
		t.Fatalf("collector: %d, %v", n, err)
	}
	var gone bool
	if err := f.s.pool.QueryRow(ctx, `SELECT object_gone FROM bodies WHERE hash = $1`, bodyHash(body)).Scan(&gone); err != nil {
		t.Fatal(err)
	}
	if gone {
		t.Fatal("recorded gone on a row marked again by someone else")
	}
}
