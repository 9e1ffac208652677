package postgres

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// commitTracer records, for every write transaction (from the batch
// holding its BEGIN to the one holding its COMMIT, on one connection),
// whether one of its statements set a relaxed commit, and the text of
// every statement sent.
type commitTracer struct {
	mu      sync.Mutex
	relaxed []bool
	sqls    []string
	open    map[*pgx.Conn]bool // transactions under way: relaxed so far
}

// setsRelaxed reports whether q sets synchronous_commit off for its
// transaction.
func setsRelaxed(q string) bool {
	return strings.Contains(q, `set_config('synchronous_commit', 'off', true)`)
}

type batchSQLKey struct{}

func (c *commitTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sqls = append(c.sqls, d.SQL)
	return ctx
}
func (c *commitTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *commitTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, batchSQLKey{}, &[]string{})
}

func (c *commitTracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, d pgx.TraceBatchQueryData) {
	if sqls, ok := ctx.Value(batchSQLKey{}).(*[]string); ok {
		*sqls = append(*sqls, d.SQL)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sqls = append(c.sqls, d.SQL)
	if c.open == nil {
		c.open = map[*pgx.Conn]bool{}
	}
	if d.SQL == `BEGIN` {
		c.open[conn] = false
	}
	if setsRelaxed(d.SQL) {
		c.open[conn] = true
	}
}

func (c *commitTracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, _ pgx.TraceBatchEndData) {
	sqls, ok := ctx.Value(batchSQLKey{}).(*[]string)
	if !ok || !slices.Contains(*sqls, `COMMIT`) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.relaxed = append(c.relaxed, c.open[conn])
	delete(c.open, conn)
}

// take returns the commits recorded since the last take.
func (c *commitTracer) take() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.relaxed
	c.relaxed = nil
	c.sqls = nil
	return out
}

// sent returns the statements sent since the last take that contain
// part.
func (c *commitTracer) sent(part string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, q := range c.sqls {
		if strings.Contains(q, part) {
			out = append(out, q)
		}
	}
	return out
}

// openTraced opens a store on a new database with RelaxedCommits as
// given, a commitTracer and a notifier (so that it listens for other
// nodes' changes), and user "u" on it.
func openTraced(t *testing.T, relaxed bool) (*Store, *account, *commitTracer) {
	t.Helper()
	ct := &commitTracer{}
	s, err := Open(context.Background(), pgtest.NewDatabase(t), Options{Logger: quietLogger(), RelaxedCommits: relaxed, Tracer: ct, Notifier: &storetest.Recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	acct := newUser(t, s)
	ct.take()
	return s, acct.(*account), ct
}

// TestRelaxedCommits: with store.fsync = "optimized", flag changes and
// expunges commit with synchronous_commit off, while new mail, copies,
// moves and mailbox changes commit durably; with "always" nothing
// commits relaxed.
func TestRelaxedCommits(t *testing.T) {
	ctx := context.Background()
	for _, relaxed := range []bool{true, false} {
		_, a, ct := openTraced(t, relaxed)
		steps := []struct {
			what string
			lazy bool
			run  func() error
		}{
			{"append", false, func() error {
				_, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}, {Body: storetest.Msg(3)}})
				return err
			}},
			{"create", false, func() error { return a.CreateMailbox(ctx, "Archive", "") }},
			{"store", true, func() error {
				_, err := a.StoreFlags(ctx, inboxID(t, a), []uint32{1, 2}, store.FlagsAdd, []string{`\Seen`}, 0, false)
				return err
			}},
			// Copies and moves hand new UIDs to the client: durable.
			{"copy", false, func() error { _, err := a.Copy(ctx, inboxID(t, a), []uint32{1}, "Archive"); return err }},
			{"move", false, func() error { _, err := a.Move(ctx, inboxID(t, a), []uint32{2}, "Archive"); return err }},
			{"expunge", true, func() error { _, err := a.Expunge(ctx, inboxID(t, a), nil, false); return err }},
		}
		for _, st := range steps {
			if err := st.run(); err != nil {
				t.Fatalf("relaxed=%v: %s: %v", relaxed, st.what, err)
			}
			want := []bool{st.lazy && relaxed}
			if got := ct.take(); !slices.Equal(got, want) {
				t.Errorf("relaxed=%v: %s committed relaxed %v, want %v", relaxed, st.what, got, want)
			}
		}
	}
}

// TestRelaxedCommitGroup: a transaction that holds a durable write
// besides lazy ones (group commit) commits durably.
func TestRelaxedCommitGroup(t *testing.T) {
	ctx := context.Background()
	s, a, ct := openTraced(t, true)
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}}); err != nil {
		t.Fatal(err)
	}
	inbox := inboxID(t, a)
	ct.take()

	blocker := holdUserLock(t, s, a.id)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	flag := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = a.StoreFlags(ctx, inbox, []uint32{1}, store.FlagsAdd, []string{`$k` + string(rune('a'+i))}, 0, false)
		}()
	}
	flag(0) // leads alone, waiting for the lock
	waitWriteQueue(t, s, a.id, 0)
	flag(1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errs[2] = a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(2)}})
	}()
	waitWriteQueue(t, s, a.id, 2)
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got, want := ct.take(), []bool{true, false}; !slices.Equal(got, want) {
		t.Fatalf("commits relaxed %v, want %v (a STORE alone, then a STORE with an APPEND)", got, want)
	}
}

// inboxID returns the id of a's INBOX.
func inboxID(t *testing.T, a *account) int64 {
	t.Helper()
	m, err := a.Mailbox(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// TestClaimCommitsRelaxed: the \Recent claim, one implicit transaction,
// commits relaxed whatever store.fsync says: the user's row lock it takes
// sets it.
func TestClaimCommitsRelaxed(t *testing.T) {
	ctx := context.Background()
	_, a, ct := openTraced(t, false)
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}}); err != nil {
		t.Fatal(err)
	}
	id := inboxID(t, a)
	ct.take()
	if from, err := a.ClaimRecent(ctx, id, 1); err != nil || from != 1 {
		t.Fatalf("claim: from %d, %v", from, err)
	}
	locks := ct.sent("FOR NO KEY UPDATE")
	if len(locks) != 1 || !setsRelaxed(locks[0]) || len(ct.sent("synchronous_commit")) != 1 {
		t.Fatalf("the claim sent %q", ct.sent(""))
	}
}
