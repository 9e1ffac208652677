package sqlite

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestTwoStoresConcurrentAppend: two Store instances on one directory (as
// tern serve and tern deliver are two processes) append to the same user
// at the same time without errors.
func TestTwoStoresConcurrentAppend(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1 := openTest(t, dir, nil)
	defer s1.Close()
	if err := s1.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dir, nil)
	defer s2.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i, s := range []*Store{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.Account(ctx, "u")
			if err != nil {
				errs <- err
				return
			}
			defer a.Close()
			for j := range 20 {
				if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i*100 + j)}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCheckQuotaUsage: tern check finds and repairs usage counters that
// disagree with the messages.
func TestCheckQuotaUsage(t *testing.T) {
	ctx := context.Background()
	s, _, a := openUser(t)
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.users[1].db.ExecContext(ctx, `UPDATE usage SET messages = 7, storage = 1`); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 1 || !strings.Contains(p[0], "quota usage") {
		t.Fatalf("check: %q %v", p, err)
	}
	if _, err := s.Check(ctx, true); err != nil {
		t.Fatal(err)
	}
	q, err := a.Quota(ctx)
	if err != nil || q.MessagesUsed != 1 || q.StorageUsed != int64(len(storetest.Msg(1))) {
		t.Fatalf("after repair: %+v %v", q, err)
	}
}
