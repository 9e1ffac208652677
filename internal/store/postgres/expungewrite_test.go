package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
)

// oneTripExpungeCounter counts the one-statement expunges
// (oneTripExpungeSQL) the store sends.
type oneTripExpungeCounter struct{ n atomic.Int64 }

func (c *oneTripExpungeCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (c *oneTripExpungeCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *oneTripExpungeCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *oneTripExpungeCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
func (c *oneTripExpungeCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	if strings.HasPrefix(d.SQL, "WITH mb AS (SELECT "+mboxCols+" FROM mailboxes") {
		c.n.Add(1)
	}
}

// deltaRecorder keeps the last mailbox delta and change notification a
// store gave.
type deltaRecorder struct {
	mu      sync.Mutex
	from    uint64
	delta   *store.IndexDelta
	changed uint64
}

func (r *deltaRecorder) MailboxChanged(_ string, _ int64, modSeq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed = modSeq
}

func (r *deltaRecorder) MailboxDelta(_ string, _, _ int64, from uint64, d *store.IndexDelta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from, r.delta = from, d
}

// take returns and clears what r holds.
func (r *deltaRecorder) take() (uint64, *store.IndexDelta, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from, d, changed := r.from, r.delta, r.changed
	r.from, r.delta, r.changed = 0, nil, 0
	return from, d, changed
}

// TestOneTripExpunge runs random expunges (of a mailbox's \Deleted
// messages, of a few UIDs' \Deleted ones, of a few UIDs whatever their
// flags) on a mailbox whose messages share bodies with each other and
// contents with copies in another mailbox. Each must remove exactly the
// messages it should, report them, leave their tombstones at one new
// modseq, hand this process's mailbox index the delta of exactly that,
// and keep the database's invariants (Check: usage, body references, no
// unused contents, UIDNEXT and HIGHESTMODSEQ); the copies stay readable.
func TestOneTripExpunge(t *testing.T) {
	ctx := context.Background()
	tr := &oneTripExpungeCounter{}
	rec := &deltaRecorder{}
	s, err := Open(ctx, pgtest.NewDatabase(t), Options{Logger: quietLogger(), Tracer: tr, Notifier: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	if err := a.CreateMailbox(ctx, "Archive", ""); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(37, 2))
	body := func(i int) []byte { return fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i%7, i%7) } // shared bodies
	deleted := map[uint32]bool{}                                                                       // INBOX's messages
	var inbox int64
	appendSome := func(n int) {
		var msgs []store.NewMessage
		for range n {
			m := store.NewMessage{Body: body(rng.IntN(100))}
			if rng.IntN(2) == 0 {
				m.Flags = []string{`\Deleted`}
			}
			msgs = append(msgs, m)
		}
		res, err := a.Append(ctx, "INBOX", msgs)
		if err != nil {
			t.Fatal(err)
		}
		inbox = res.MailboxID
		for i, u := range res.UIDs {
			deleted[u] = len(msgs[i].Flags) > 0
		}
	}
	appendSome(30)
	// Copies share their contents with INBOX's messages.
	var some []uint32
	for u := range deleted {
		if rng.IntN(3) == 0 {
			some = append(some, u)
		}
	}
	if _, err := a.Copy(ctx, inbox, some, "Archive"); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if problems, err := s.Check(ctx, false); err != nil || len(problems) > 0 {
			t.Fatalf("%s: check: %v %q", when, err, problems)
		}
	}
	check("before")
	calls := int64(0)
	for round := range 40 {
		if round%5 == 4 {
			appendSome(8)
		}
		var uids []uint32
		onlyDeleted := true
		switch rng.IntN(3) {
		case 0: // EXPUNGE
		case 1, 2: // UID EXPUNGE, or a removal whatever the flags
			for u := range deleted {
				if rng.IntN(4) == 0 && len(uids) < 6 {
					uids = append(uids, u)
				}
			}
			if len(uids) == 0 {
				continue
			}
			onlyDeleted = rng.IntN(2) == 0
		}
		var want []uint32
		for u, d := range deleted {
			if (uids == nil || slices.Contains(uids, u)) && (d || !onlyDeleted) {
				want = append(want, u)
			}
		}
		slices.Sort(want)
		st, err := a.Status(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		rec.take()
		got, err := a.Expunge(ctx, inbox, uids, onlyDeleted)
		calls++
		desc := fmt.Sprintf("round %d: expunge %v (only \\Deleted: %v)", round, uids, onlyDeleted)
		if err != nil {
			t.Fatalf("%s: %v", desc, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: removed %v, want %v", desc, got, want)
		}
		for _, u := range got {
			delete(deleted, u)
		}
		vanished, err := a.Vanished(ctx, inbox, st.HighestModSeq)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(vanished, want) {
			t.Fatalf("%s: vanished since %d: %v, want %v", desc, st.HighestModSeq, vanished, want)
		}
		after, err := a.Status(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if wantModSeq := st.HighestModSeq + uint64(min(len(want), 1)); after.HighestModSeq != wantModSeq || after.Messages != uint32(len(deleted)) {
			t.Fatalf("%s: HIGHESTMODSEQ %d and %d messages, want %d and %d", desc, after.HighestModSeq, after.Messages, wantModSeq, len(deleted))
		}
		from, delta, changed := rec.take()
		if len(want) == 0 {
			if delta != nil || changed != 0 {
				t.Fatalf("%s: removed nothing, but the index was told of modseq %d (delta %v)", desc, changed, delta)
			}
		} else {
			var gone []uint32
			for _, e := range delta.Expunged {
				if e.ModSeq != after.HighestModSeq {
					t.Fatalf("%s: delta removes %d at modseq %d, want %d", desc, e.UID, e.ModSeq, after.HighestModSeq)
				}
				gone = append(gone, e.UID)
			}
			if from != st.HighestModSeq || delta.Head.HighestModSeq != after.HighestModSeq || delta.Head.UIDNext != after.UIDNext ||
				changed != after.HighestModSeq || !slices.Equal(gone, want) || len(delta.Rows) > 0 {
				t.Fatalf("%s: delta from %d to %d (UIDNEXT %d) removing %v, change at %d; want from %d to %d (%d) removing %v",
					desc, from, delta.Head.HighestModSeq, delta.Head.UIDNext, gone, changed, st.HighestModSeq, after.HighestModSeq, after.UIDNext, want)
			}
		}
		check(desc)
	}
	if n := tr.n.Load(); n != calls {
		t.Fatalf("%d of %d expunges took the one-statement path", n, calls)
	}
	// The copies are all there and readable.
	st, err := a.Status(ctx, "Archive")
	if err != nil || st.Messages != uint32(len(some)) {
		t.Fatalf("Archive: %d messages (%v), want %d", st.Messages, err, len(some))
	}
	for u := uint32(1); u <= uint32(len(some)); u++ {
		mb, err := a.Mailboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(mb, func(m store.MailboxInfo) bool { return m.Name == "Archive" })
		b, err := a.OpenBody(ctx, mb[i].ID, u)
		if err != nil {
			t.Fatalf("Archive %d: %v", u, err)
		}
		raw, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
		b.Close()
		if err != nil || !strings.HasPrefix(string(raw), "Subject: ") {
			t.Fatalf("Archive %d: %q, %v", u, raw, err)
		}
	}

	// A mailbox that is gone, or \Noselect, loses nothing.
	if err := a.CreateMailbox(ctx, "p/c", ""); err != nil {
		t.Fatal(err)
	}
	res, err := a.Append(ctx, "p", []store.NewMessage{{Body: []byte("Subject: p\r\n\r\nx\r\n"), Flags: []string{`\Deleted`}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteMailbox(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, res.MailboxID, nil, true); !errors.Is(err, store.ErrNoSelect) && !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("EXPUNGE in a deleted parent: %v, want no such mailbox or \\Noselect", err)
	}
	for _, name := range []string{"p/c", "p"} {
		if err := a.DeleteMailbox(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Expunge(ctx, res.MailboxID, []uint32{1}, true); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("EXPUNGE in a deleted mailbox: %v, want no such mailbox", err)
	}
	check("at the end")
}
