package index_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/search"
	msgsort "github.com/tern-imap/tern/internal/sort"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestDifferential runs random APPEND/STORE/EXPUNGE/COPY/MOVE from several
// goroutines through the index (as sessions of tern serve) and through a
// second store on the same directory (as tern deliver, another process,
// whose changes reach the index only as notifications), with a memory
// budget small enough that indexes are evicted and reloaded meanwhile.
// Afterwards every answer of the index equals what a fresh store says.
func TestDifferential(t *testing.T) {
	for _, budget := range []int64{0, 64 << 10} {
		t.Run(fmt.Sprintf("budget=%d", budget), func(t *testing.T) { runDifferential(t, budget) })
	}
}

func runDifferential(t *testing.T, budget int64) {
	dir := t.TempDir()
	st, x := openIndexed(t, dir, nil, index.Options{MemoryBudget: budget})
	diffStores(t, st, x, budget == 0, func(n store.Notifier) (store.Store, error) {
		return sqlite.Open(context.Background(), dir, sqlite.Options{Notifier: n})
	})
}

// diffStores is TestDifferential on st (the index x in front of a
// store) and a second store on the same data that open opens (given the
// notifier that tells the index of its commits), then compared with a
// third, fresh one. cached says the budget holds the field lines, so
// the index must answer one-field searches itself.
func diffStores(t *testing.T, st store.Store, x *index.Indexes, cached bool, open func(n store.Notifier) (store.Store, error)) {
	ctx := context.Background()
	defer st.Close()
	if err := st.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	setup, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	boxes := []string{"INBOX", "Archive", "Work"}
	for _, b := range boxes[1:] {
		if err := setup.CreateMailbox(ctx, b, ""); err != nil {
			t.Fatal(err)
		}
	}
	setup.Close()
	// The other process: its own store on the same data, telling the
	// index about its commits as the notify socket would.
	other, err := open(x)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		s, n := store.Store(st), 100
		if w == 3 {
			// Fewer: under the race detector a second store's writer can
			// starve past SQLite's busy timeout behind the first's.
			s, n = other, 30
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := randomOps(ctx, s, boxes, rand.New(rand.NewPCG(uint64(w), 7)), n); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	fresh, err := open(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	ia, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer ia.Close()
	fa, err := fresh.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	for _, name := range boxes {
		compareMailbox(t, ctx, ia, fa, name, cached)
	}
	if err := index.CheckLines(x); err != nil {
		t.Error(err)
	}
}

// randomOps runs n random operations on user u's mailboxes.
func randomOps(ctx context.Context, s store.Store, boxes []string, r *rand.Rand, n int) error {
	a, err := s.Account(ctx, "u")
	if err != nil {
		return err
	}
	defer a.Close()
	flags := []string{`\Seen`, `\Deleted`, `\Flagged`, `\Answered`, "$label1", "Junk", "todo"}
	for i := range n {
		name := boxes[r.IntN(len(boxes))]
		info, err := a.Mailbox(ctx, name)
		if err != nil {
			return err
		}
		_, uids, err := a.Snapshot(ctx, info.ID)
		if err != nil {
			return err
		}
		pick := func() []uint32 {
			var out []uint32
			for _, u := range uids {
				if r.IntN(4) == 0 {
					out = append(out, u)
				}
			}
			return out
		}
		switch op := r.IntN(11); {
		case op < 4 || len(uids) == 0:
			var msgs []store.NewMessage
			for j := range 1 + r.IntN(5) {
				msgs = append(msgs, store.NewMessage{Body: storetest.Msg(i*10 + j), Flags: []string{flags[r.IntN(len(flags))]}})
			}
			_, err = a.Append(ctx, name, msgs)
		case op < 7:
			ops := []store.FlagOp{store.FlagsAdd, store.FlagsRemove, store.FlagsReplace}
			_, err = a.StoreFlags(ctx, info.ID, pick(), ops[r.IntN(3)], []string{flags[r.IntN(len(flags))], flags[r.IntN(len(flags))]}, 0, false)
		case op < 8:
			_, err = a.Expunge(ctx, info.ID, pick(), r.IntN(2) == 0)
		case op < 9:
			_, err = a.Copy(ctx, info.ID, pick(), boxes[r.IntN(len(boxes))])
		case op < 10:
			dest := boxes[r.IntN(len(boxes))]
			if dest != name {
				_, err = a.Move(ctx, info.ID, pick(), dest)
			}
		case r.IntN(3) == 0: // a client's FETCH of a few messages (fills the content cache)
			err = a.Fetch(ctx, info.ID, pick(), contentFetchWant, func(*store.Message) error { return nil })
		case r.IntN(2) == 0: // a client's FETCH BODY[] of a few (fills the body cache)
			for _, u := range pick() {
				if _, _, err = readBody(ctx, a, info.ID, u); errors.Is(err, store.ErrNoSuchMessage) {
					err = nil // expunged by another worker meanwhile
				}
				if err != nil {
					break
				}
			}
		default: // a search box's SEARCH FROM (fills the field lines)
			key := fieldKeys[r.IntN(len(fieldKeys))]
			if _, err = a.SearchText(ctx, info.ID, search.TextQueries(key, search.TextLeaves(key))); errors.Is(err, store.ErrNoTextIndex) {
				err = nil // a store of its own without a text index (postgres)
			}
		}
		if err != nil {
			return fmt.Errorf("op %d on %s: %w", i, name, err)
		}
	}
	return nil
}

// compareMailbox checks that the indexed account answers exactly as the
// store read from scratch.
func compareMailbox(t *testing.T, ctx context.Context, ia, fa store.Account, name string, cached bool) {
	t.Helper()
	ist, err := ia.Status(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	fst, err := fa.Status(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ist, fst) {
		t.Errorf("%s: STATUS through the index %+v, store %+v", name, ist, fst)
	}
	isnap, iuids, err := ia.Snapshot(ctx, ist.ID)
	if err != nil {
		t.Fatal(err)
	}
	fsnap, fuids, err := fa.Snapshot(ctx, fst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(iuids, fuids) {
		t.Fatalf("%s: UIDs through the index %v, store %v", name, iuids, fuids)
	}
	// The mailbox's keyword list (FLAGS, PERMANENTFLAGS), which a
	// commit's own delta does not carry.
	if !slices.Equal(isnap.Keywords, fsnap.Keywords) {
		t.Errorf("%s: keywords through the index %q, store %q", name, isnap.Keywords, fsnap.Keywords)
	}
	want := store.WantFlags | store.WantDates | store.WantSize | store.WantIDs
	im, fm := fetchAll(t, ctx, ia, ist.ID, iuids, want), fetchAll(t, ctx, fa, fst.ID, fuids, want)
	if !reflect.DeepEqual(im, fm) {
		t.Errorf("%s: FETCH through the index differs from the store", name)
	}
	// SORT/THREAD fields through the fixed-fields cache, twice (filling,
	// then cached).
	want |= store.WantEnvelope | store.WantThreading | store.WantRepeated
	fm = fetchAll(t, ctx, fa, fst.ID, fuids, want)
	for i := range fm { // the store leaves the subject key to SORT; the cache keeps it
		fm[i].BaseSubject = msgsort.EnvelopeSubject(fm[i].Envelope)
	}
	for range 2 {
		im = fetchAll(t, ctx, ia, ist.ID, iuids, want)
		for i := range im { // a mailbox over its share of the budget is answered by the store
			if !im[i].BaseSubject.Known {
				im[i].BaseSubject = msgsort.EnvelopeSubject(im[i].Envelope)
			}
		}
		if !reflect.DeepEqual(im, fm) {
			t.Errorf("%s: SORT/THREAD fields through the index differ from the store", name)
		}
	}
	// Small FETCHes of content fields through the content cache, twice
	// (filling, then cached), in pieces small enough to use it.
	for start := 0; start < len(iuids); start += 50 {
		part := iuids[start:min(start+50, len(iuids))]
		fm := fetchAll(t, ctx, fa, fst.ID, part, contentFetchWant)
		for range 2 {
			if im := fetchAll(t, ctx, ia, ist.ID, part, contentFetchWant); !reflect.DeepEqual(im, fm) {
				t.Errorf("%s: content fields of UIDs %d.. through the index differ from the store", name, part[0])
			}
		}
	}
	// Bodies through the body cache, twice (filling, then cached).
	for _, u := range iuids {
		fb, fp, err := readBody(ctx, fa, fst.ID, u)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			ib, ip, err := readBody(ctx, ia, ist.ID, u)
			if err != nil || !bytes.Equal(ib, fb) || !bytes.Equal(ip, fp) {
				t.Fatalf("%s: the body of UID %d through the index differs from the store (%v)", name, u, err)
			}
		}
	}
	// Expunged UIDs (some read into the body cache while they lived) are
	// gone through the index too.
	for u := uint32(1); u < ist.UIDNext; u++ {
		if _, ok := slices.BinarySearch(iuids, u); ok {
			continue
		}
		if _, _, err := readBody(ctx, ia, ist.ID, u); !errors.Is(err, store.ErrNoSuchMessage) {
			t.Fatalf("%s: expunged UID %d through the index: %v, want ErrNoSuchMessage", name, u, err)
		}
	}
	for _, since := range []uint64{ist.HighestModSeq, ist.HighestModSeq - 1, ist.HighestModSeq / 2, 1} {
		maxUID := ist.UIDNext - 1
		ics, err := ia.Changes(ctx, ist.ID, since, maxUID/2)
		if err != nil {
			t.Fatal(err)
		}
		fcs, err := fa.Changes(ctx, fst.ID, since, maxUID/2)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalize(ics), normalize(fcs)) {
			t.Errorf("%s: Changes(%d, %d) through the index %+v, store %+v", name, since, maxUID/2, ics, fcs)
		}
	} // One-field searches through the field lines, twice (filling, then
	// cached).
	for range 2 {
		checkFieldSearch(t, ctx, ia, fa, name, cached)
	}
}

// contentFetchWant is what a client's FETCH of ENVELOPE, BODYSTRUCTURE,
// header fields and flags asks of the store.
const contentFetchWant = store.WantFlags | store.WantDates | store.WantSize | store.WantIDs |
	store.WantEnvelope | store.WantBody | store.WantBodyStructure | store.WantHeader | store.WantThreading

func fetchAll(t *testing.T, ctx context.Context, a store.Account, id int64, uids []uint32, want store.Want) []store.Message {
	t.Helper()
	var out []store.Message
	if err := a.Fetch(ctx, id, uids, want, func(m *store.Message) error {
		out = append(out, *m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// normalize makes empty and nil lists compare equal.
func normalize(cs store.ChangeSet) store.ChangeSet {
	if len(cs.New) == 0 {
		cs.New = nil
	}
	if len(cs.Changed) == 0 {
		cs.Changed = nil
	}
	if len(cs.Expunged) == 0 {
		cs.Expunged = nil
	}
	return cs
}

// readBody reads a message's bytes and part tree as a client's FETCH
// does (store.KeepBody).
func readBody(ctx context.Context, a store.Account, id int64, uid uint32) (data, parts []byte, err error) {
	b, err := a.OpenBody(store.KeepBody(ctx), id, uid)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	data = make([]byte, b.Size())
	if _, err := b.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	return data, b.Parts(), nil
}
