package sqlite

import (
	"context"
	"fmt"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestStatementsNotReprepared: everyday work (APPEND, flag changes that
// alternate between set and clear, FETCH, the per-command changes,
// bodies, EXPUNGE) runs on statements prepared once. SQLite prepares a
// statement again when its plan depended on a bound value that changed;
// each such time costs a parse, which keeping statements prepared is
// meant to save.
func TestStatementsNotReprepared(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	var msgs []store.NewMessage
	for i := range 40 {
		msgs = append(msgs, store.NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\nFrom: a@example.org\r\n\r\nbody %d\r\n", i, i)})
	}
	if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	info, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	// Five rounds warm up: the first statements after a schema change
	// (the store's own, at opening) are prepared again once.
	const warmup, rounds = 5, 35
	before := 0
	for i := range rounds {
		if i == warmup {
			before = a.u.db.Reprepares()
		}
		uid := uint32(1 + i%40)
		for _, op := range []store.FlagOp{store.FlagsAdd, store.FlagsRemove, store.FlagsAdd} {
			if _, err := a.StoreFlags(ctx, info.ID, []uint32{uid, uid + 1}, op, []string{`\Seen`, "$Work"}, 0, false); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Changes(ctx, info.ID, uint64(i), uint32(i%2)); err != nil {
			t.Fatal(err)
		}
		if err := a.Fetch(ctx, info.ID, []uint32{uid}, store.WantHeader, func(*store.Message) error { return nil }); err != nil {
			t.Fatal(err)
		}
		b, err := a.OpenBody(ctx, info.ID, uid)
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if _, err := a.Append(ctx, "INBOX", msgs[i:i+1]); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Expunge(ctx, info.ID, []uint32{uint32(41 + i)}, i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	// About 450 statements run in the measured rounds. A few prepare
	// again where a range's bound changed between 0, 1 and larger values
	// (SQLite 3.54 plans those apart); clearing the bindings after every
	// statement, as ncruces's database/sql driver does, prepared them
	// again on nearly every call.
	if n := a.u.db.Reprepares() - before; n >= rounds-warmup {
		t.Fatalf("statements were prepared again %d times in %d rounds", n, rounds-warmup)
	}
}
