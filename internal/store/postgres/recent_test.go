package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestClaimRecentExactlyOnce: sessions on two nodes claim \Recent on one
// mailbox while messages arrive through both; every UID is claimed by
// exactly one claim, none twice, none lost. The claim runs outside the
// write queue (ClaimRecent), so only the database's locks keep concurrent
// claims apart, and none deadlocks with the deliveries.
func TestClaimRecentExactlyOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	nodes := []*Store{openURL(t, url, nil), openURL(t, url, nil)}
	for _, n := range nodes {
		defer n.Close()
	}
	if err := nodes[0].CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	const (
		messages         = 120
		claimersPerNode  = 3
		appendersPerNode = 1
	)
	var accts []store.Account
	for _, n := range nodes {
		for range claimersPerNode + appendersPerNode {
			a, err := n.Account(ctx, "u")
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			accts = append(accts, a)
		}
	}
	inbox, err := accts[0].Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		claimed  = map[uint32]int{} // UID -> claims that got it
		appended atomic.Int32
		errs     []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	claim := func(a store.Account) error {
		head, err := a.(store.IndexSource).MailboxHead(ctx, inbox.ID, "")
		if err != nil {
			return err
		}
		upTo := head.UIDNext - 1
		first, err := a.ClaimRecent(ctx, inbox.ID, upTo)
		if err != nil {
			return err
		}
		mu.Lock()
		for u := first; u <= upTo; u++ {
			claimed[u]++
		}
		mu.Unlock()
		return nil
	}
	for i, a := range accts {
		if i%(claimersPerNode+appendersPerNode) == 0 { // an appender
			wg.Go(func() {
				for appended.Add(1) <= messages {
					if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
						fail(fmt.Errorf("append: %w", err))
						return
					}
				}
			})
			continue
		}
		wg.Go(func() {
			for appended.Load() <= messages {
				if err := claim(a); err != nil {
					fail(fmt.Errorf("claim: %w", err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := claim(accts[1]); err != nil { // whatever the last appends left
		t.Fatal(err)
	}
	for u := uint32(1); u <= messages; u++ {
		if claimed[u] != 1 {
			t.Errorf("UID %d claimed %d times", u, claimed[u])
		}
	}
	if len(claimed) != messages {
		t.Errorf("%d UIDs claimed, %d appended", len(claimed), messages)
	}
}

// TestClaimRecentErrors: a claim on a mailbox that does not exist, or
// is another user's, or is \Noselect, fails as such and claims nothing.
func TestClaimRecentErrors(t *testing.T) {
	ctx := context.Background()
	s := openURL(t, pgtest.NewDatabase(t), nil)
	defer s.Close()
	for _, u := range []string{"u", "v"} {
		if err := s.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	v, err := s.Account(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}}); err != nil {
		t.Fatal(err)
	}
	vInbox, err := v.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.ClaimRecent(ctx, vInbox.ID, 1); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("claim on another user's mailbox: %v", err)
	}
	if _, err := u.ClaimRecent(ctx, 1<<40, 1); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("claim on a missing mailbox: %v", err)
	}
	if first, err := v.ClaimRecent(ctx, vInbox.ID, 1); err != nil || first != 1 {
		t.Fatalf("v's claim after u's attempt: %d, %v (want 1)", first, err)
	}
	if err := u.CreateMailbox(ctx, "a/b", ""); err != nil {
		t.Fatal(err)
	}
	if err := u.DeleteMailbox(ctx, "a"); err != nil { // has a child: \Noselect
		t.Fatal(err)
	}
	a, err := u.(store.IndexSource).MailboxHead(ctx, 0, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.ClaimRecent(ctx, a.ID, 1); !errors.Is(err, store.ErrNoSelect) {
		t.Fatalf("claim on a \\Noselect mailbox: %v", err)
	}
}
