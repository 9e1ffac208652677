package postgres

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// waitFor polls rec until a call for (user, mailbox) with at least modseq
// arrives, or fails after a generous deadline (signals cross a real
// server; this is not a timing assertion).
func waitFor(t *testing.T, rec *storetest.Recorder, user string, mailbox int64, modseq uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var seen []storetest.Notification
	for time.Now().Before(deadline) {
		for _, c := range rec.Take() {
			seen = append(seen, c)
			if c.User == user && c.MailboxID == mailbox && c.ModSeq >= modseq {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no change signal for %s/%d at modseq %d; got %+v", user, mailbox, modseq, seen)
}

// TestTwoNodes: two Stores on one database, as two tern nodes. A change
// through one reaches the other's Notifier (LISTEN/NOTIFY) and is then
// visible through it; concurrent appends through both give unique,
// ascending UIDs.
func TestTwoNodes(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	recA, recB := &storetest.Recorder{}, &storetest.Recorder{}
	nodeA := openURL(t, url, recA)
	defer nodeA.Close()
	nodeB := openURL(t, url, recB)
	defer nodeB.Close()
	if err := nodeA.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := nodeA.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := nodeB.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	res, err := b.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, recA, "u", res.MailboxID, st.HighestModSeq)
	if calls := recB.Take(); len(calls) != 1 {
		t.Fatalf("node B's own notifier: %+v (want the one local call, not its echo too)", calls)
	}
	cs, err := a.Changes(ctx, res.MailboxID, 0, 0)
	if err != nil || len(cs.New) != 1 || cs.New[0].UID != res.UIDs[0] {
		t.Fatalf("node A's view after the signal: %+v %v", cs, err)
	}
	// Mailbox list changes cross too.
	if err := b.CreateMailbox(ctx, "Work", ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(recA.TakeLists(), "u") {
		if time.Now().After(deadline) {
			t.Fatal("node A did not hear of the new mailbox")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ACL changes cross too (NOTIFY sessions on node A follow them);
	// identifiers may hold spaces.
	if _, err := b.SetACL(ctx, "Work", "v w", store.FlagsReplace, "lr"); err != nil {
		t.Fatal(err)
	}
	for !slices.Contains(recA.TakeACLs(), "u v w") {
		if time.Now().After(deadline) {
			t.Fatal("node A did not hear of the ACL change")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := recB.TakeACLs(); !slices.Equal(got, []string{"u v w"}) {
		t.Fatalf("node B's own ACL signals: %q (want the local one, not its echo too)", got)
	}

	// Appends through both nodes at once: every UID once, each writer's
	// UIDs ascending, no gaps.
	var wg sync.WaitGroup
	got := make([][]uint32, 4)
	errs := make([]error, 4)
	for i, acct := range []store.Account{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 15 {
				r, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(100*i + j)}})
				if err != nil {
					errs[i] = err
					return
				}
				got[i] = append(got[i], r.UIDs...)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for _, uids := range got {
		if !slices.IsSorted(uids) {
			t.Fatalf("UIDs of one writer not ascending: %v", uids)
		}
		for _, u := range uids {
			if seen[u] {
				t.Fatalf("UID %d given twice", u)
			}
			seen[u] = true
		}
	}
	_, uids, err := a.Snapshot(ctx, res.MailboxID)
	if err != nil || len(uids) != 61 || uids[60] != 61 {
		t.Fatalf("INBOX after concurrent appends: %d UIDs, last %v, %v", len(uids), uids[len(uids)-1], err)
	}
}

// TestListenReconnects: when the listening connection dies (a server
// restart, a proxy timeout), the Store connects again and change signals
// from other nodes flow again.
func TestListenReconnects(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	recA := &storetest.Recorder{}
	nodeA := openURL(t, url, recA)
	defer nodeA.Close()
	nodeB := openURL(t, url, nil)
	defer nodeB.Close()
	if err := nodeB.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	b, err := nodeB.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var killed int
	if err := nodeB.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+notifyChannel+`'`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listening connections, %v", killed, err)
	}
	// Signals sent before the new connection listens are lost (the
	// check of the watched mailboxes' heads after the reconnect covers
	// them, heads.go), so append until one arrives.
	deadline := time.Now().Add(20 * time.Second)
	for i := 1; ; i++ {
		res, err := b.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}})
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end) && !got; time.Sleep(10 * time.Millisecond) {
			for _, c := range recA.Take() {
				got = got || (c.User == "u" && c.MailboxID == res.MailboxID)
			}
		}
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no change signal after the listening connection was killed")
		}
	}
}

// TestTwoNodesVacationClaim: a vacation period claimed at once through
// two nodes (two deliveries of one sender arriving at different nodes)
// is won by exactly one of them.
func TestTwoNodesVacationClaim(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	nodeA := openURL(t, url, nil)
	defer nodeA.Close()
	nodeB := openURL(t, url, nil)
	defer nodeB.Close()
	if err := nodeA.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		key := "sender-" + strconv.Itoa(round)
		var won atomic.Int32
		var wg sync.WaitGroup
		for _, node := range []*Store{nodeA, nodeB, nodeA, nodeB} {
			wg.Go(func() {
				a, err := node.Account(ctx, "u")
				if err != nil {
					t.Error(err)
					return
				}
				defer a.Close()
				ok, err := a.ClaimSieveState(ctx, store.SieveVacation, key, time.Now().Add(time.Hour))
				if err != nil {
					t.Error(err)
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("round %d: %d claims won, want 1", round, won.Load())
		}
	}
}

// TestClaimSieveStatePrunes: a claim, like a mark, deletes the user's
// expired marks.
func TestClaimSieveStatePrunes(t *testing.T) {
	ctx := context.Background()
	s, a := openUser(t)
	if err := a.MarkSieveState(ctx, store.SieveVacation, "old", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.ClaimSieveState(ctx, store.SieveVacation, "new", time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("ClaimSieveState = %v, %v", ok, err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sieve_state`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d sieve_state rows, %v; want 1 (the expired one pruned)", n, err)
	}
}

// TestTwoNodesQuota: deliveries to one user through two nodes at once
// stop at the quota exactly (the limit checked under the user's row lock
// in the database, not by either node), every other one is refused with
// ErrOverQuota, and both nodes report the same exact usage, also after an
// expunge through one and appends through the other.
func TestTwoNodesQuota(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	nodes := []*Store{openURL(t, url, nil), openURL(t, url, nil)}
	for _, n := range nodes {
		defer n.Close()
	}
	if err := nodes[0].CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	accts := make([]store.Account, len(nodes))
	for i, n := range nodes {
		a, err := n.Account(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		accts[i] = a
	}
	const limit, workers, per = 40, 8, 8
	if err := accts[1].SetQuota(ctx, 0, limit); err != nil {
		t.Fatal(err)
	}
	var ok, over atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*workers)
	for i := range nodes {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range per {
					_, err := accts[i].Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i*1000 + w*100 + j)}})
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, store.ErrOverQuota):
						over.Add(1)
					default:
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if refused := int64(len(nodes)*workers*per - limit); ok.Load() != limit || over.Load() != refused {
		t.Fatalf("%d appends stored and %d refused; want %d and %d", ok.Load(), over.Load(), limit, refused)
	}
	wantUsage := func(msgs int64) {
		t.Helper()
		for i, a := range accts {
			q, err := a.Quota(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st, err := a.Status(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			if q.MessagesUsed != msgs || int64(st.Messages) != msgs {
				t.Fatalf("node %d: usage %d, INBOX %d messages; want %d", i, q.MessagesUsed, st.Messages, msgs)
			}
		}
	}
	wantUsage(limit)
	inbox, err := accts[0].Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accts[0].Expunge(ctx, inbox.ID, []uint32{1, 2, 3}, false); err != nil {
		t.Fatal(err)
	}
	wantUsage(limit - 3)
	for i := range 4 {
		_, err := accts[1].Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(9000 + i)}})
		if want := i == 3; errors.Is(err, store.ErrOverQuota) != want || (err != nil && !want) {
			t.Fatalf("append %d after the expunge: %v (over quota expected: %v)", i, err, want)
		}
	}
	wantUsage(limit)
}
