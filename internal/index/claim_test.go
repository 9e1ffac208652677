package index_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// claimCounting is the sqlite store with its accounts' ClaimRecent calls
// counted (everything else is the store's own).
type claimCounting struct {
	store.Store
	claims *atomic.Int64
}

func (c claimCounting) Account(ctx context.Context, user string) (store.Account, error) {
	a, err := c.Store.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	return claimCountingAccount{Account: a, IndexSource: a.(store.IndexSource), claims: c.claims}, nil
}

type claimCountingAccount struct {
	store.Account
	store.IndexSource
	claims *atomic.Int64
}

func (c claimCountingAccount) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	c.claims.Add(1)
	return c.Account.ClaimRecent(ctx, mailboxID, upTo)
}

// TestClaimRecentOnce: the sessions IDLE on a mailbox all claim \Recent
// for the same new message at once; exactly one of them gets it, and the
// store sees one claim, not one per session.
func TestClaimRecentOnce(t *testing.T) {
	ctx := context.Background()
	x := index.New(nil, index.Options{})
	backend, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Notifier: x})
	if err != nil {
		t.Fatal(err)
	}
	claims := &atomic.Int64{}
	st := x.Wrap(claimCounting{Store: backend, claims: claims})
	defer st.Close()
	if err := st.CreateUser(ctx, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mb, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Snapshot(ctx, mb.ID); err != nil { // the index is loaded
		t.Fatal(err)
	}
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Snapshot(ctx, mb.ID); err != nil { // caught up to the new UID
		t.Fatal(err)
	}
	uid := res.UIDs[0]
	before := claims.Load()
	const sessions = 50
	var recent atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range sessions {
		wg.Go(func() {
			<-start
			first, err := a.ClaimRecent(ctx, mb.ID, uid)
			if err != nil {
				t.Error(err)
				return
			}
			if first <= uid {
				recent.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if recent.Load() != 1 {
		t.Errorf("%d sessions got \\Recent for UID %d, want 1", recent.Load(), uid)
	}
	if n := claims.Load() - before; n != 1 {
		t.Errorf("the store saw %d claims from %d sessions, want 1", n, sessions)
	}
}
