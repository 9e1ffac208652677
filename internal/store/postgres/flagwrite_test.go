package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// oneTripCounter counts the one-statement flag updates (oneTripFlagsSQL)
// the store sends.
type oneTripCounter struct{ n atomic.Int64 }

func (c *oneTripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (c *oneTripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *oneTripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *oneTripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
func (c *oneTripCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	if strings.Contains(d.SQL, "hms AS (UPDATE mailboxes") {
		c.n.Add(1)
	}
}

// storedFlags is one message's flags as the database has them.
type storedFlags struct {
	modseq uint64
	sys    int64
	kws    string
}

// readFlags reads every message of mailbox id and its HIGHESTMODSEQ.
func readFlags(t *testing.T, conn *pgx.Conn, id int64) (map[uint32]storedFlags, uint64) {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT uid, modseq, sysflags, keywords FROM messages WHERE mailbox_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]storedFlags{}
	for rows.Next() {
		var uid, modseq int64
		var f storedFlags
		if err := rows.Scan(&uid, &modseq, &f.sys, &f.kws); err != nil {
			t.Fatal(err)
		}
		f.modseq = uint64(modseq)
		out[uint32(uid)] = f
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	var highest int64
	if err := conn.QueryRow(ctx, `SELECT highestmodseq FROM mailboxes WHERE id = $1`, id).Scan(&highest); err != nil {
		t.Fatal(err)
	}
	return out, uint64(highest)
}

// TestOneTripFlagsAsApplyFlags runs random STOREs (every operation,
// system flags, keywords in other spellings than the account's, some
// with UNCHANGEDSINCE) on few messages, which take the one-statement path,
// and checks the result and what the database holds afterwards against
// backend.ApplyFlags, the general path's rule, applied to what it held
// before.
func TestOneTripFlagsAsApplyFlags(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	tr := &oneTripCounter{}
	s, err := Open(ctx, url, Options{Logger: quietLogger(), Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(37, 1))
	pool := []string{"$Label1", "$label2", "Junk", "NonJunk", "$Forwarded", "work"}
	sysNames := []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}
	someFlags := func(respell bool) []string {
		var out []string
		for _, f := range sysNames {
			if rng.IntN(3) == 0 {
				out = append(out, f)
			}
		}
		for _, k := range pool {
			if rng.IntN(4) == 0 {
				if respell && rng.IntN(2) == 0 {
					k = strings.ToUpper(k)
				}
				out = append(out, k)
			}
		}
		return out
	}
	var msgs []store.NewMessage
	for i := range 30 {
		msgs = append(msgs, store.NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nbody\r\n", i), Flags: someFlags(false)})
	}
	res, err := a.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	id := res.MailboxID
	// Every keyword spelled and listed in INBOX, as the cache then knows.
	if _, err := a.StoreFlags(ctx, id, []uint32{1}, store.FlagsAdd, pool, 0, false); err != nil {
		t.Fatal(err)
	}
	canon := map[string]string{}
	for _, k := range pool {
		canon[strings.ToLower(k)] = k
	}
	ops := []store.FlagOp{store.FlagsAdd, store.FlagsRemove, store.FlagsReplace, store.FlagsReplaceKeepSeen}
	before := tr.n.Load()
	const rounds = 300
	oneTrip := int64(0) // STOREs in at most orRangesMax runs of UIDs
	for round := range rounds {
		op := ops[rng.IntN(len(ops))]
		flags := someFlags(true)
		var uids []uint32
		for range 1 + rng.IntN(6) {
			if u := uint32(1 + rng.IntN(30)); !slices.Contains(uids, u) {
				uids = append(uids, u)
			}
		}
		if len(toRanges(uids).lo) <= orRangesMax {
			oneTrip++
		}
		was, highest := readFlags(t, conn, id)
		since, hasSince := uint64(0), rng.IntN(4) == 0
		if hasSince {
			since = highest - min(highest, uint64(rng.IntN(20)))
		}
		got, err := a.StoreFlags(ctx, id, uids, op, flags, since, hasSince)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		opSys, opKws, err := backend.SplitFlags(flags)
		if err != nil {
			t.Fatal(err)
		}
		if op != store.FlagsRemove {
			for i, k := range opKws {
				opKws[i] = canon[strings.ToLower(k)]
			}
		}
		want := maps.Clone(was)
		var wantMeta []store.MessageMeta
		var wantModified []uint32
		wantModSeq := uint64(0)
		sorted := slices.Sorted(slices.Values(uids))
		for _, u := range sorted {
			f := was[u]
			if hasSince && f.modseq > since {
				wantModified = append(wantModified, u)
				continue
			}
			ns, nk := backend.ApplyFlags(op, f.sys, f.kws, opSys, opKws)
			if ns != f.sys || nk != f.kws {
				f = storedFlags{modseq: highest + 1, sys: ns, kws: nk}
				want[u] = f
				wantModSeq = highest + 1
			}
			wantMeta = append(wantMeta, store.MessageMeta{UID: u, ModSeq: f.modseq, Flags: backend.FlagList(f.sys, f.kws)})
		}
		desc := fmt.Sprintf("round %d: STORE %v op %d %q (unchanged since %d: %v)", round, sorted, op, flags, since, hasSince)
		if got.ModSeq != wantModSeq || !slices.Equal(got.Modified, wantModified) || len(got.Updated) != len(wantMeta) {
			t.Fatalf("%s: modseq %d, modified %v, %d updated; want %d, %v, %d", desc, got.ModSeq, got.Modified, len(got.Updated), wantModSeq, wantModified, len(wantMeta))
		}
		for i, m := range got.Updated {
			w := wantMeta[i]
			if m.UID != w.UID || m.ModSeq != w.ModSeq || !slices.Equal(m.Flags, w.Flags) {
				t.Fatalf("%s: updated %d/%d %v; want %d/%d %v", desc, m.UID, m.ModSeq, m.Flags, w.UID, w.ModSeq, w.Flags)
			}
		}
		now, nowHighest := readFlags(t, conn, id)
		if wantHighest := max(highest, wantModSeq); nowHighest != wantHighest {
			t.Fatalf("%s: HIGHESTMODSEQ %d, want %d", desc, nowHighest, wantHighest)
		}
		for u, f := range want {
			if now[u] != f {
				t.Fatalf("%s: message %d holds %+v, want %+v", desc, u, now[u], f)
			}
		}
	}
	if n := tr.n.Load() - before; n != oneTrip || oneTrip < rounds/2 {
		t.Fatalf("%d of %d STOREs took the one-statement path, want %d", n, rounds, oneTrip)
	}

	// A mailbox that is gone, or \Noselect, takes nothing.
	if err := a.CreateMailbox(ctx, "p/c", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, "p", []store.NewMessage{{Body: []byte("Subject: p\r\n\r\nx\r\n")}}); err != nil {
		t.Fatal(err)
	}
	mbs, err := a.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var parent int64
	for _, m := range mbs {
		if m.Name == "p" {
			parent = m.ID
		}
	}
	if err := a.DeleteMailbox(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	_, err = a.StoreFlags(ctx, parent, []uint32{1}, store.FlagsAdd, []string{`\Seen`}, 0, false)
	if !errors.Is(err, store.ErrNoSelect) && !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("STORE in a deleted parent: %v, want no such mailbox or \\Noselect", err)
	}
	for _, name := range []string{"p/c", "p"} {
		if err := a.DeleteMailbox(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err = a.StoreFlags(ctx, parent, []uint32{1}, store.FlagsAdd, []string{`\Seen`}, 0, false); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("STORE in a deleted mailbox: %v, want no such mailbox", err)
	}
	if n := tr.n.Load() - before; n != oneTrip+2 {
		t.Fatalf("%d STOREs took the one-statement path, want %d", n, oneTrip+2)
	}
}
