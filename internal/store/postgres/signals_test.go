package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// listenRaw LISTENs on the change channel with a connection of its own
// and returns a function that collects what arrived until quiet has
// passed without a notification.
func listenRaw(t *testing.T, url string) func(quiet time.Duration) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		t.Fatal(err)
	}
	return func(quiet time.Duration) []string {
		var got []string
		for {
			wctx, cancel := context.WithTimeout(ctx, quiet)
			n, err := conn.WaitForNotification(wctx)
			cancel()
			if err != nil {
				return got
			}
			got = append(got, n.Payload)
		}
	}
}

// openRelaxed opens a Store on url with relaxed commits (store.fsync =
// "optimized") and notifier n (nil: it does not listen), and an account
// of a new user "u" with one message in INBOX.
func openRelaxed(t *testing.T, url string, n store.Notifier) (*Store, store.Account, store.AppendResult) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, url, Options{Logger: quietLogger(), RelaxedCommits: true, Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}})
	if err != nil {
		t.Fatal(err)
	}
	return s, a, res
}

// otherNode opens a second Store on url, as another node, and returns
// what its notifier hears.
func otherNode(t *testing.T, url string) *storetest.Recorder {
	t.Helper()
	rec := &storetest.Recorder{}
	other := openURL(t, url, rec)
	t.Cleanup(func() { other.Close() })
	return rec
}

// flip sets (i even) or clears \Flagged on res's message: a relaxed write.
func flip(t *testing.T, a store.Account, res store.AppendResult, i int) {
	t.Helper()
	op := store.FlagsAdd
	if i%2 == 1 {
		op = store.FlagsRemove
	}
	if _, err := a.StoreFlags(context.Background(), res.MailboxID, res.UIDs, op, []string{`\Flagged`}, 0, false); err != nil {
		t.Fatal(err)
	}
}

// highest is INBOX's HIGHESTMODSEQ through a.
func highest(t *testing.T, a store.Account) uint64 {
	t.Helper()
	st, err := a.Status(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return st.HighestModSeq
}

// TestSignalsBatched: a node's relaxed writes in quick succession share
// their change signals (at most one send per signalInterval), and the
// last signal carries the mailbox's final modseq.
func TestSignalsBatched(t *testing.T) {
	url := pgtest.NewDatabase(t)
	collect := listenRaw(t, url)
	_, a, res := openRelaxed(t, url, nil)
	collect(200 * time.Millisecond) // the APPEND's signal
	const writes = 200
	t0 := time.Now()
	for i := range writes {
		flip(t, a, res, i)
	}
	elapsed := time.Since(t0)
	final := highest(t, a)
	got := collect(500 * time.Millisecond)
	// One send may leave at once, then at most one per interval; the
	// last one leaves at most an interval after the last write.
	if limit := int(elapsed/signalInterval) + 2; len(got) > limit {
		t.Errorf("%d writes in %v sent %d signals; at most %d expected", writes, elapsed, len(got), limit)
	}
	if len(got) == 0 {
		t.Fatal("no change signal arrived")
	}
	last, err := parsePayload(got[len(got)-1])
	if err != nil {
		t.Fatal(err)
	}
	if last.user != "u" || last.changed[res.MailboxID] != final {
		t.Fatalf("last signal %+v; want u's INBOX at modseq %d", last, final)
	}
	t.Logf("%d writes in %v: %d signals", writes, elapsed, len(got))
}

// TestSignalsSentAtClose: a Store closed right after its writes (tern
// deliver, a node shutting down) sends the signals still pending.
func TestSignalsSentAtClose(t *testing.T) {
	url := pgtest.NewDatabase(t)
	rec := otherNode(t, url)
	s, a, res := openRelaxed(t, url, nil)
	for i := range 3 { // the first may leave at once; the others wait
		flip(t, a, res, i)
	}
	final := highest(t, a)
	s.Close()
	waitFor(t, rec, "u", res.MailboxID, final)
}

// TestSignalOfWriteDuringClose: a write that commits after Close stopped
// the sender (it waited for the user's row lock meanwhile) sends its
// own signal.
func TestSignalOfWriteDuringClose(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	rec := otherNode(t, url)
	s, a, res := openRelaxed(t, url, nil)
	before := highest(t, a)
	hold, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close(ctx)
	tx, err := hold.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE name = 'u' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	stored := make(chan error, 1)
	go func() {
		_, err := a.StoreFlags(ctx, res.MailboxID, res.UIDs, store.FlagsAdd, []string{`\Flagged`}, 0, false)
		stored <- err
	}()
	waitForLockWaiter(t, s)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	<-s.signals.done // the sender has stopped; the STORE still waits
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-stored; err != nil {
		t.Fatal(err)
	}
	<-closed
	waitFor(t, rec, "u", res.MailboxID, before+1)
}

// TestSignalRetried: a send that fails is tried again; the signal is not
// lost.
func TestSignalRetried(t *testing.T) {
	url := pgtest.NewDatabase(t)
	rec := otherNode(t, url)
	s, a, res := openRelaxed(t, url, nil)
	var failed atomic.Int32
	s.signals.mu.Lock()
	s.signals.hook = func() error {
		if failed.Add(1) == 1 {
			return errors.New("injected failure")
		}
		return nil
	}
	s.signals.mu.Unlock()
	flip(t, a, res, 0)
	waitFor(t, rec, "u", res.MailboxID, highest(t, a))
	if failed.Load() < 2 {
		t.Fatalf("%d sends", failed.Load())
	}
}

// TestDurableWritesSignalAtCommit: with relaxed commits, a durable write
// (APPEND) still sends its signal inside its transaction, and a relaxed
// one (STORE) leaves it to the node's batched sends.
func TestDurableWritesSignalAtCommit(t *testing.T) {
	ctx := context.Background()
	ct := &commitTracer{}
	s, err := Open(ctx, pgtest.NewDatabase(t), Options{Logger: quietLogger(), RelaxedCommits: true, Tracer: ct})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := newUser(t, s)
	ct.take()
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}}); err != nil {
		t.Fatal(err)
	}
	if q := ct.sent("pg_notify($1, $2)"); len(q) != 1 {
		t.Fatalf("APPEND sent %d signals in its transaction", len(q))
	}
	ct.take()
	if _, err := a.StoreFlags(ctx, inboxID(t, a.(*account)), []uint32{1}, store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	if q := ct.sent("pg_notify($1, $2)"); len(q) != 0 {
		t.Fatalf("STORE sent %d signals in its transaction", len(q))
	}
}

// TestSignalPayloadsSplit: many mailboxes of one user go in several
// payloads, each within maxSignalPayload, that decode to all of them.
func TestSignalPayloadsSplit(t *testing.T) {
	s := &Store{node: "n0de"}
	changed := map[int64]uint64{}
	for i := range int64(3000) {
		changed[1_000_000+i] = uint64(5_000_000 + i)
	}
	user := "a user with spaces"
	payloads := s.notifyPayloads(user, changed, true)
	if len(payloads) < 2 {
		t.Fatalf("%d payloads for 3000 mailboxes", len(payloads))
	}
	got := map[int64]uint64{}
	lists := 0
	for _, p := range payloads {
		if len(p) > maxSignalPayload {
			t.Errorf("payload of %d bytes", len(p))
		}
		c, err := parsePayload(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.node != "n0de" || c.user != user {
			t.Fatalf("payload %.60q decodes to node %q user %q", p, c.node, c.user)
		}
		for id, ms := range c.changed {
			got[id] = ms
		}
		if c.list {
			lists++
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(changed) || lists != 1 {
		t.Fatalf("decoded %d mailboxes (want %d), list in %d payloads", len(got), len(changed), lists)
	}
	if one := s.notifyPayloads(user, map[int64]uint64{7: 9}, false); len(one) != 1 || !strings.HasSuffix(one[0], " 7:9") {
		t.Fatalf("one mailbox: %q", one)
	}
}
