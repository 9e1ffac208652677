package postgres

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
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

// holdingProxy forwards TCP to an S3 server, except that while holding
// it keeps the requests that start with "DELETE " (and the rest of their
// connection) instead of sending them: a request the server gets late,
// after its client gave up (a queue in a load balancer or an overloaded
// server; a node that died with the request sent). deliver sends them.
type holdingProxy struct {
	t      *testing.T
	target string
	ln     net.Listener
	mu     sync.Mutex
	hold   bool
	held   [][]byte
}

func startHoldingProxy(t *testing.T, target string) *holdingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{t: t, target: target, ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *holdingProxy) forward(c net.Conn) {
	defer c.Close()
	b, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer b.Close()
	go io.Copy(c, b)
	buf := make([]byte, 64<<10)
	held := -1
	for {
		n, err := c.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			p.mu.Lock()
			if held < 0 && p.hold && bytes.HasPrefix(chunk, []byte("DELETE ")) {
				held = len(p.held)
				p.held = append(p.held, nil)
			}
			if held >= 0 {
				p.held[held] = append(p.held[held], chunk...)
			}
			p.mu.Unlock()
			if held < 0 {
				if _, err := b.Write(chunk); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// deliver stops holding and sends each held request on a connection of
// its own, reading the answer.
func (p *holdingProxy) deliver() int {
	p.mu.Lock()
	p.hold = false
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, req := range held {
		c, err := net.Dial("tcp", p.target)
		if err != nil {
			p.t.Fatal(err)
		}
		c.Write(req)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			p.t.Fatalf("late DELETE: %v", err)
		}
		p.t.Logf("late DELETE answered %s", r.Status)
		r.Body.Close()
		c.Close()
	}
	return len(held)
}

// TestLateS3DeleteAfterRevival: the collector (node A) deletes an
// object; the DELETE reaches S3 only after A's client gave up (timeout),
// so A's transaction rolls back and the row stays pending with refs 0.
// Node B delivers the body again: refs 0 -> 1, verifyBlobs Stats the
// object, which is still there, and commits. Then S3 executes the DELETE:
// a committed message's body is gone.
func TestLateS3DeleteAfterRevival(t *testing.T) {
	// A known gap, found by a review in session 41 and not fixed yet: a
	// body's object is named by its hash alone, so a DELETE still on its
	// way can remove the object a revival checked. The fix (an object
	// name that is never used again after a deletion was sent) changes
	// the schema and every reader; see the note.
	t.Skip("known gap: a late S3 DELETE after a revival (object names are reused)")
	ctx := context.Background()
	cfg := s3test.NewPrefix(t)
	direct, err := blob.OpenS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startHoldingProxy(t, strings.TrimPrefix(cfg.Endpoint, "http://"))
	viaProxy := cfg
	viaProxy.Endpoint, viaProxy.Timeout, viaProxy.Attempts = "http://"+proxy.ln.Addr().String(), 500*time.Millisecond, 1
	collectorBlobs, err := blob.OpenS3(ctx, viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDatabase(t)
	nodeA, err := Open(ctx, url, Options{Logger: quietLogger(), Blobs: collectorBlobs})
	if err != nil {
		t.Fatal(err)
	}
	defer nodeA.Close()
	nodeB, err := Open(ctx, url, Options{Logger: quietLogger(), Blobs: direct})
	if err != nil {
		t.Fatal(err)
	}
	defer nodeB.Close()
	if err := nodeB.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	acct, err := nodeB.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	body := uniqueBody()
	res, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: body}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.Expunge(ctx, res.MailboxID, res.UIDs, false); err != nil {
		t.Fatal(err)
	}

	proxy.mu.Lock()
	proxy.hold = true
	proxy.mu.Unlock()
	n, err := nodeA.CollectBlobs(ctx, 0)
	t.Logf("collector on node A: %d, %v", n, err)
	if err == nil {
		t.Fatal("the held DELETE did not fail the collector (test assumption)")
	}

	res, err = acct.Append(ctx, "INBOX", []store.NewMessage{{Body: body}})
	if err != nil {
		t.Fatal(err)
	}
	if got := proxy.deliver(); got == 0 {
		t.Fatal("no DELETE held (test assumption)")
	}
	if _, err := direct.Stat(ctx, blobKey(bodyHash(body))); err != nil {
		t.Errorf("object of a committed message: %v", err)
	}
	b, err := acct.OpenBody(ctx, res.MailboxID, res.UIDs[0])
	if err != nil {
		t.Fatalf("committed message's body: %v", err)
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
	if _, exists := f.row(unused); exists || f.hasObject(unused) {
		t.Errorf("the unused body was not collected (row %v, object %v)", exists, f.hasObject(unused))
	}
}
