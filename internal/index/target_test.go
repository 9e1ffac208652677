package index_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// deltaCounting is a store whose accounts count their catch-up queries
// (IndexDelta); everything else is the store's own.
type deltaCounting struct {
	store.Store
	n *atomic.Int64
}

func (d deltaCounting) Account(ctx context.Context, user string) (store.Account, error) {
	a, err := d.Store.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	return deltaCountingAccount{Account: a, IndexSource: a.(store.IndexSource), n: d.n}, nil
}

type deltaCountingAccount struct {
	store.Account
	store.IndexSource
	n *atomic.Int64
}

func (d deltaCountingAccount) IndexDelta(ctx context.Context, id int64, since uint64, sinceUID uint32) (store.IndexDelta, error) {
	d.n.Add(1)
	return d.IndexSource.IndexDelta(ctx, id, since, sinceUID)
}

// TestTargetNoCommitReaches: a modseq the index was told of that the
// store, asked afterwards, does not reach (its commit was lost in a
// database crash) costs one catch-up, not one per read from then on.
func TestTargetNoCommitReaches(t *testing.T) {
	ctx := context.Background()
	x := index.New(nil, index.Options{})
	backend, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Notifier: x})
	if err != nil {
		t.Fatal(err)
	}
	n := &atomic.Int64{}
	st := x.Wrap(deltaCounting{Store: backend, n: n})
	defer st.Close()
	if err := st.CreateUser(ctx, "u", ""); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: a\r\n\r\na\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Snapshot(ctx, res.MailboxID); err != nil {
		t.Fatal(err)
	}
	x.MailboxChanged("u", res.MailboxID, 1<<40)
	before := n.Load()
	for range 3 {
		if err := a.Fetch(ctx, res.MailboxID, res.UIDs, store.WantFlags, func(*store.Message) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load() - before; got != 1 {
		t.Errorf("three reads after a target no commit reaches made %d catch-up queries, want 1", got)
	}
}
