package postgres

import (
	"context"
	"fmt"
	"strings"
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

// TestSignalsBatched: a node's writes in quick succession share their
// change signals (at most one send per signalInterval), and the last
// signal carries the mailbox's final modseq.
func TestSignalsBatched(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	collect := listenRaw(t, url)
	s := openURL(t, url, nil)
	defer s.Close()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}})
	if err != nil {
		t.Fatal(err)
	}
	collect(200 * time.Millisecond) // the APPEND's signal
	const writes = 200
	t0 := time.Now()
	for i := range writes {
		op := store.FlagsAdd
		if i%2 == 1 {
			op = store.FlagsRemove
		}
		if _, err := a.StoreFlags(ctx, res.MailboxID, res.UIDs, op, []string{`\Flagged`}, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(t0)
	st, err := a.Status(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
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
	if last.user != "u" || last.changed[res.MailboxID] != st.HighestModSeq {
		t.Fatalf("last signal %+v; want u's INBOX at modseq %d", last, st.HighestModSeq)
	}
	t.Logf("%d writes in %v: %d signals", writes, elapsed, len(got))
}

// TestSignalsSentAtClose: a Store closed right after its writes (tern
// deliver, a node shutting down) sends the signals still pending.
func TestSignalsSentAtClose(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	rec := &storetest.Recorder{}
	other := openURL(t, url, rec)
	defer other.Close()
	s := openURL(t, url, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	var res store.AppendResult
	for i := range 3 { // the first may leave at once; the others wait
		if res, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := a.Status(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	s.Close()
	waitFor(t, rec, "u", res.MailboxID, st.HighestModSeq)
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
