package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/store"
)

// pausingBlobs is a real blob store whose Stat of chosen keys stops until
// the test lets it go on: a write paused there (verifyBlobs) holds its
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

	// u is writing (an APPEND of a new body, paused in verifyBlobs with
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
