package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestThreeNodesConcurrent: three nodes (each a Store with its own
// mailbox index in front, as tern serve wires it) APPEND, STORE, EXPUNGE
// and MOVE on one mailbox at once. Afterwards every node's view (through
// its index) equals the database's, every acknowledged APPEND's UID is
// unique and either still there or expunged, and each node's appends got
// ascending UIDs.
func TestThreeNodesConcurrent(t *testing.T) {
	ctx := context.Background()
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
	const nodes, ops = 3, 60
	accts := make([]store.Account, nodes)
	for i := range accts {
		ix := index.New(notify.New(), index.Options{})
		backend := openURL(t, url, ix)
		defer backend.Close()
		a, err := ix.Wrap(backend).Account(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		accts[i] = a
	}
	appended := make([][]uint32, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for n, a := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			for i := range ops {
				_, uids, err := a.Snapshot(ctx, inbox.ID)
				if err != nil {
					errs[n] = fmt.Errorf("snapshot: %w", err)
					return
				}
				var pick []uint32
				if len(uids) > 0 {
					pick = []uint32{uids[rng.IntN(len(uids))]}
				}
				switch op := rng.IntN(5); {
				case op <= 1 || len(pick) == 0:
					res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1000*n + i)}})
					if err != nil {
						errs[n] = fmt.Errorf("append: %w", err)
						return
					}
					appended[n] = append(appended[n], res.UIDs...)
				case op == 2:
					_, err = a.StoreFlags(ctx, inbox.ID, pick, store.FlagsAdd, []string{`\Seen`, "$N" + fmt.Sprint(n)}, 0, false)
				case op == 3:
					_, err = a.Expunge(ctx, inbox.ID, pick, false)
				default:
					_, err = a.Move(ctx, inbox.ID, pick, "B")
				}
				if err != nil {
					errs[n] = fmt.Errorf("op %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	// The database's view.
	_, want, err := ta.Snapshot(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	flagsOf := func(a store.Account) map[uint32]string {
		out := map[uint32]string{}
		err := a.Fetch(ctx, inbox.ID, want, store.WantFlags, func(m *store.Message) error {
			out[m.UID] = fmt.Sprint(m.ModSeq, m.Flags)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	wantFlags := flagsOf(ta)
	for n, a := range accts {
		_, got, err := a.Snapshot(ctx, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("node %d sees UIDs %v, the database %v", n, got, want)
		}
		if gf := flagsOf(a); fmt.Sprint(gf) != fmt.Sprint(wantFlags) {
			t.Fatalf("node %d sees flags %v, the database %v", n, gf, wantFlags)
		}
	}
	// Every acknowledged append: a unique UID, ascending per node, and
	// still there or expunged (moves expunge from INBOX).
	cs, err := ta.Changes(ctx, inbox.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for n, uids := range appended {
		if !slices.IsSorted(uids) {
			t.Fatalf("node %d's appends got UIDs out of order: %v", n, uids)
		}
		for _, u := range uids {
			if seen[u] {
				t.Fatalf("UID %d acknowledged twice", u)
			}
			seen[u] = true
			if !slices.Contains(want, u) && !slices.Contains(cs.Expunged, u) {
				t.Fatalf("acknowledged UID %d neither in INBOX nor expunged", u)
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("nothing appended")
	}
}
