package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestHeadCheckQuietWhenNothingChanged: with the real notifier chain
// (mailbox index, then hub) and a memory budget that keeps one index at
// a time, watched mailboxes whose index was evicted are not reported at
// every check when nothing changed (each report wakes their sessions,
// which reload the index and evict the other's); a lost change to one
// still is.
func TestHeadCheckQuietWhenNothingChanged(t *testing.T) {
	ctx := context.Background()
	hub := notify.New()
	x := index.New(hub, index.Options{MemoryBudget: 1})
	s, err := Open(ctx, pgtest.NewDatabase(t), Options{Notifier: x, Logger: quietLogger(), headCheckInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	st := x.Wrap(s)
	if err := st.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.CreateMailbox(ctx, "Other", ""); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, name := range []string{"INBOX", "Other"} {
		res, err := a.Append(ctx, name, []store.NewMessage{{Body: storetest.Msg(1)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.MailboxID)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var wakes atomic.Int64
	var subs []*notify.Subscription
	for _, id := range ids {
		sub := hub.Subscribe("u", id)
		defer sub.Close()
		subs = append(subs, sub)
		snap, _, err := a.Snapshot(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { // an IDLE session: woken, it asks what changed
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-sub.C:
					wakes.Add(1)
					if _, err := a.Changes(ctx, id, snap.HighestModSeq, snap.UIDNext-1); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	loads0, wakes0 := x.Stats().Loads, wakes.Load()
	time.Sleep(time.Second) // 20 checks, nothing written
	close(stop)
	wg.Wait()
	if loads, w := x.Stats().Loads-loads0, wakes.Load()-wakes0; loads > 2 || w > 2 {
		t.Fatalf("nothing changed for 1 s, yet %d wake-ups and %d whole-mailbox index loads", w, loads)
	}
	for _, sub := range subs {
		select {
		case <-sub.C:
		default:
		}
	}
	bumpUnsignalled(t, s, ids[0])
	select {
	case <-subs[0].C:
	case <-time.After(2 * time.Second):
		t.Fatal("a lost change was not reported")
	}
}
