package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

func TestNextFetchBatch(t *testing.T) {
	cases := []struct {
		in   []uidRange
		n    int
		want [][]uidRange
	}{
		{[]uidRange{{1, 3}}, 4, [][]uidRange{{{1, 3}}}},
		{[]uidRange{{1, 4}}, 4, [][]uidRange{{{1, 4}}}},
		{[]uidRange{{1, 10}}, 4, [][]uidRange{{{1, 4}}, {{5, 8}}, {{9, 10}}}},
		{[]uidRange{{1, 2}, {5, 5}, {7, 9}}, 4, [][]uidRange{{{1, 2}, {5, 5}, {7, 7}}, {{8, 9}}}},
		{[]uidRange{{1, 1}, {3, 3}, {5, 5}, {7, 7}, {9, 9}}, 2, [][]uidRange{{{1, 1}, {3, 3}}, {{5, 5}, {7, 7}}, {{9, 9}}}},
		{[]uidRange{{4294967290, 4294967295}}, 4, [][]uidRange{{{4294967290, 4294967293}}, {{4294967294, 4294967295}}}},
	}
	for _, c := range cases {
		rs := slices.Clone(c.in)
		var got [][]uidRange
		for len(rs) > 0 {
			var b []uidRange
			b, rs = nextFetchBatch(rs, c.n)
			got = append(got, slices.Clone(b))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%v by %d: %v, want %v", c.in, c.n, got, c.want)
		}
	}
}

// TestFetchBatched: Fetch of more messages than one batch, with gaps,
// returns each existing message once in UID order, and no read
// transaction is open while its callback runs: a WAL checkpoint from
// another connection completes then.
func TestFetchBatched(t *testing.T) {
	ctx := context.Background()
	_, dir, a := openUser(t)
	const n = 3*fetchBatch + 10
	res := appendNumbered(t, a, n)
	// Expunge every third message; ask for all UIDs and some that never
	// existed.
	var gone, want []uint32
	for _, u := range res.UIDs {
		if u%3 == 0 {
			gone = append(gone, u)
		} else {
			want = append(want, u)
		}
	}
	if _, err := a.Expunge(ctx, res.MailboxID, gone, false); err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(filepath.Join(dir, "users", "1", "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkpoint := func() int {
		var busy, logFrames, done int
		if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		return busy
	}
	if busy := checkpoint(); busy != 0 {
		t.Fatalf("checkpoint before Fetch: busy=%d", busy)
	}
	// A write after the checkpoint: Fetch's reads see frames in the WAL.
	if _, err := a.StoreFlags(ctx, res.MailboxID, want[:1], store.FlagsAdd, []string{`\Flagged`}, 0, false); err != nil {
		t.Fatal(err)
	}
	ask := append(slices.Clone(res.UIDs), n+1, n+2, n+1000)
	var got []uint32
	err = a.Fetch(ctx, res.MailboxID, ask, store.WantEnvelope|store.WantFlags, func(m *store.Message) error {
		if len(got)%fetchBatch == 5 {
			// Fetch reads the next batches meanwhile (pipeline), each in a
			// short read transaction; once it has read ahead as far as it
			// may, it waits for this callback without one.
			deadline := time.Now().Add(10 * time.Second)
			for busy := checkpoint(); busy != 0; busy = checkpoint() {
				if time.Now().After(deadline) {
					t.Fatalf("checkpoint inside the callback for UID %d: still busy after 10 s", m.UID)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		if m.Envelope == nil {
			t.Errorf("UID %d without envelope", m.UID)
		}
		got = append(got, m.UID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("fetched %d UIDs %v..., want %d", len(got), got[:min(len(got), 10)], len(want))
	}
}

// TestFetchPipelineStops: a Fetch of several batches that fn ends early
// (an error, or the context cancelled as when a client goes away) returns
// that error and leaves no reading goroutine behind.
func TestFetchPipelineStops(t *testing.T) {
	ctx := context.Background()
	_, _, a := openUser(t)
	const n = 4 * fetchBatch
	res := appendNumbered(t, a, n)
	stop := errors.New("client gone")
	seen := 0
	err := a.Fetch(ctx, res.MailboxID, res.UIDs, store.WantEnvelope, func(m *store.Message) error {
		if seen++; seen == fetchBatch+3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != fetchBatch+3 {
		t.Fatalf("Fetch ended by fn: err %v after %d messages", err, seen)
	}
	cctx, cancel := context.WithCancel(ctx)
	seen = 0
	err = a.Fetch(cctx, res.MailboxID, res.UIDs, store.WantEnvelope, func(m *store.Message) error {
		if seen++; seen == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || seen > 2*fetchBatch {
		t.Fatalf("Fetch with its context cancelled: err %v after %d messages", err, seen)
	}
	// The reader's last act is closing its channel, which Fetch waits
	// for; the goroutine itself ends a moment later.
	for deadline := time.Now().Add(10 * time.Second); fetchReaders() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d reading goroutines left after Fetch returned", fetchReaders())
		}
	}
	// Whole: every message once, in order, over several batches.
	var got []uint32
	if err := a.Fetch(ctx, res.MailboxID, res.UIDs, store.WantFlags|store.WantEnvelope, func(m *store.Message) error {
		got = append(got, m.UID)
		return nil
	}); err != nil || !slices.Equal(got, res.UIDs) {
		t.Fatalf("whole Fetch: %v, %d UIDs", err, len(got))
	}
}

// fetchReaders counts the goroutines running fetchPlan.pipeline's reader.
func fetchReaders() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "(*fetchPlan).pipeline.func")
}

// appendNumbered appends n small messages ("Subject: 1" ...) to INBOX.
func appendNumbered(t *testing.T, a store.Account, n int) store.AppendResult {
	t.Helper()
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i] = store.NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nbody\r\n", i+1)}
	}
	res, err := a.Append(context.Background(), "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
