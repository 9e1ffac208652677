package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestThreeNodesConcurrent: three nodes (each a Store with its own
// mailbox index in front, as tern serve wires it) APPEND, STORE, EXPUNGE
// and MOVE on one mailbox at once, 60 operations each, or for
// TERN_NODES_DURATION (e.g. 60s, the run) when set. Afterwards
// every node's view (through its index) equals the database's; every
// acknowledged APPEND's UID is unique, ascending per node, and still
// there or expunged; every moved message is in the destination; and every
// change got a MODSEQ above every MODSEQ its node had seen before, none
// shared between two changes.
func TestThreeNodesConcurrent(t *testing.T) {
	ctx := context.Background()
	var soak time.Duration
	if v := os.Getenv("TERN_NODES_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TERN_NODES_DURATION: %v", err)
		}
		soak = d
	}
	url := pgtest.NewDatabase(t)
	truth := openURL(t, url, nil)
	defer truth.Close()
	if err := truth.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	ta, err := truth.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Close()
	if err := ta.CreateMailbox(ctx, "B", ""); err != nil {
		t.Fatal(err)
	}
	inbox, err := ta.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	const nodes = 3
	workers := make([]*nodeWorker, nodes)
	for i := range workers {
		ix := index.New(notify.New(), index.Options{})
		backend := openURL(t, url, ix)
		defer backend.Close()
		a, err := ix.Wrap(backend).Account(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		workers[i] = &nodeWorker{n: i, a: a, inbox: inbox.ID}
	}
	deadline := time.Now().Add(soak)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w.n), 7))
			for i := 0; (soak == 0 && i < 60) || (soak > 0 && time.Now().Before(deadline)); i++ {
				if w.err = w.step(ctx, rng, i); w.err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	var errs []error
	for _, w := range workers {
		errs = append(errs, w.err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkNodesAgree(t, ta, inbox.ID, workers)
	checkAcknowledged(t, ta, inbox.ID, workers)
}

// nodeWorker is one node's client in TestThreeNodesConcurrent and what it
// was told: the UIDs its APPENDs got, where its MOVEs put messages, and
// the MODSEQ of each change it made.
type nodeWorker struct {
	n        int
	a        store.Account
	inbox    int64
	appended []uint32
	moved    []uint32 // UIDs in B
	modseqs  []uint64 // one per change (flag change, MOVE), in order
	seen     uint64   // the highest MODSEQ this node has seen
	ops      int
	err      error
}

// step runs one random operation on a random message of INBOX.
func (w *nodeWorker) step(ctx context.Context, rng *rand.Rand, i int) error {
	_, uids, err := w.a.Snapshot(ctx, w.inbox)
	if err != nil {
		return fmt.Errorf("node %d: snapshot: %w", w.n, err)
	}
	w.ops++
	op := rng.IntN(5)
	if op <= 1 || len(uids) == 0 {
		res, err := w.a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(100000*w.n + i)}})
		if err != nil {
			return fmt.Errorf("node %d: append: %w", w.n, err)
		}
		w.appended = append(w.appended, res.UIDs...)
		return nil
	}
	pick := []uint32{uids[rng.IntN(len(uids))]}
	switch op {
	case 2:
		err = w.toggle(ctx, pick)
	case 3:
		_, err = w.a.Expunge(ctx, w.inbox, pick, false)
	default:
		var res store.CopyResult
		res, err = w.a.Move(ctx, w.inbox, pick, "B")
		if err == nil && len(res.DestUIDs) > 0 {
			w.moved = append(w.moved, res.DestUIDs...)
			err = w.changed(res.SrcModSeq)
		}
	}
	if err != nil {
		return fmt.Errorf("node %d: op %d on %v: %w", w.n, i, pick, err)
	}
	return nil
}

// toggle adds or removes this node's own keyword, which no other node
// touches, so the STORE always changes the message if it still exists.
func (w *nodeWorker) toggle(ctx context.Context, pick []uint32) error {
	kw := "$N" + strconv.Itoa(w.n)
	op, found := store.FlagsAdd, false
	err := w.a.Fetch(ctx, w.inbox, pick, store.WantFlags, func(m *store.Message) error {
		found = true
		w.seen = max(w.seen, m.ModSeq)
		if slices.Contains(m.Flags, kw) {
			op = store.FlagsRemove
		}
		return nil
	})
	if err != nil || !found {
		return err
	}
	res, err := w.a.StoreFlags(ctx, w.inbox, pick, op, []string{`\Seen`, kw}, 0, false)
	if err != nil || len(res.Updated) == 0 {
		return err // expunged meanwhile
	}
	return w.changed(res.Updated[0].ModSeq)
}

// changed records a change's MODSEQ; it must be above all this node saw.
func (w *nodeWorker) changed(modseq uint64) error {
	if modseq <= w.seen {
		return fmt.Errorf("a change got MODSEQ %d, not above %d seen before", modseq, w.seen)
	}
	w.seen = modseq
	w.modseqs = append(w.modseqs, modseq)
	return nil
}

// checkNodesAgree: every node's view of the mailbox (UIDs, flags and
// MODSEQs, through its index) is the database's.
func checkNodesAgree(t *testing.T, ta store.Account, mailbox int64, workers []*nodeWorker) {
	t.Helper()
	ctx := context.Background()
	_, want, err := ta.Snapshot(ctx, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	flagsOf := func(a store.Account) map[uint32]string {
		out := map[uint32]string{}
		err := a.Fetch(ctx, mailbox, want, store.WantFlags, func(m *store.Message) error {
			out[m.UID] = fmt.Sprint(m.ModSeq, m.Flags)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	wantFlags := flagsOf(ta)
	for _, w := range workers {
		_, got, err := w.a.Snapshot(ctx, mailbox)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("node %d sees UIDs %v, the database %v", w.n, got, want)
		}
		if gf := flagsOf(w.a); fmt.Sprint(gf) != fmt.Sprint(wantFlags) {
			t.Fatalf("node %d sees flags %v, the database %v", w.n, gf, wantFlags)
		}
	}
}

// checkAcknowledged: nothing a node was told is missing or doubled.
func checkAcknowledged(t *testing.T, ta store.Account, inbox int64, workers []*nodeWorker) {
	t.Helper()
	ctx := context.Background()
	_, want, err := ta.Snapshot(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ta.Changes(ctx, inbox, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ta.Mailbox(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	_, inB, err := ta.Snapshot(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	uidSeen, modseqSeen := map[uint32]bool{}, map[uint64]int{}
	var ops, changes int
	for _, w := range workers {
		ops += w.ops
		if !slices.IsSorted(w.appended) {
			t.Fatalf("node %d's appends got UIDs out of order: %v", w.n, w.appended)
		}
		for _, u := range w.appended {
			if uidSeen[u] {
				t.Fatalf("UID %d acknowledged twice", u)
			}
			uidSeen[u] = true
			if !slices.Contains(want, u) && !slices.Contains(cs.Expunged, u) {
				t.Fatalf("acknowledged UID %d neither in INBOX nor expunged", u)
			}
		}
		for _, u := range w.moved {
			if !slices.Contains(inB, u) {
				t.Fatalf("node %d moved a message to B as UID %d; B has %v", w.n, u, inB)
			}
		}
		for _, ms := range w.modseqs {
			if other, dup := modseqSeen[ms]; dup {
				t.Fatalf("MODSEQ %d given to a change of node %d and one of node %d", ms, other, w.n)
			}
			modseqSeen[ms] = w.n
			if ms > cs.HighestModSeq {
				t.Fatalf("a change's MODSEQ %d is above HIGHESTMODSEQ %d", ms, cs.HighestModSeq)
			}
		}
		changes += len(w.modseqs)
	}
	if len(uidSeen) == 0 || changes == 0 {
		t.Fatalf("%d appends and %d changes: nothing to check", len(uidSeen), changes)
	}
	t.Logf("%d operations: %d appends, %d changes with a MODSEQ, %d messages moved, %d left in INBOX",
		ops, len(uidSeen), changes, len(inB), len(want))
}
