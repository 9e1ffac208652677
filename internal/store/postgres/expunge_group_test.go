package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestExpungeInGroupCommit: expunges, whose removal goes with the
// commit (or a grouped write's savepoint release), in one group with
// a MOVE: each later write sees the earlier ones' removals (an expunge
// of UIDs already gone returns only the rest), and the contents left
// unused are dropped after every delete.
func TestExpungeInGroupCommit(t *testing.T) {
	ctx := context.Background()
	s, acct := openUser(t)
	a := acct.(*account)
	if err := acct.CreateMailbox(ctx, "Other", ""); err != nil {
		t.Fatal(err)
	}
	var msgs []store.NewMessage
	for i := range 5 {
		msgs = append(msgs, store.NewMessage{Body: storetest.Msg(100 + i)})
	}
	res, err := acct.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	inbox, u := res.MailboxID, res.UIDs
	blocker := holdUserLock(t, s, a.id)
	before := s.commits.Load()
	type result struct {
		uids []uint32
		err  error
	}
	ops := []func() result{
		func() result { r, err := acct.Expunge(ctx, inbox, u[0:1], false); return result{r, err} }, // alone
		func() result { r, err := acct.Expunge(ctx, inbox, u[1:2], false); return result{r, err} },
		func() result { r, err := acct.Expunge(ctx, inbox, u[1:3], false); return result{r, err} }, // u[1] gone
		func() result { r, err := acct.Move(ctx, inbox, u[3:4], "Other"); return result{r.SrcUIDs, err} },
		func() result { r, err := acct.Expunge(ctx, inbox, nil, false); return result{r, err} },
	}
	out := make([]result, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Add(1)
		go func() { defer wg.Done(); out[i] = op() }()
		waitWriteQueue(t, s, a.id, i)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	want := [][]uint32{u[0:1], u[1:2], u[2:3], u[3:4], u[4:5]}
	for i, r := range out {
		if r.err != nil || !slices.Equal(r.uids, want[i]) {
			t.Fatalf("write %d: %v, %v; want %v", i, r.uids, r.err, want[i])
		}
	}
	if got := s.commits.Load() - before; got != 2 {
		t.Fatalf("%d transactions, want 2", got)
	}
	var messages, contents int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM contents)`).Scan(&messages, &contents); err != nil {
		t.Fatal(err)
	}
	if messages != 1 || contents != 1 {
		t.Fatalf("%d messages and %d contents after the group, want the moved one only", messages, contents)
	}
}
