package storetest

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

func wantSieveState(t *testing.T, a store.Account, kind store.SieveStateKind, key string, want bool) {
	t.Helper()
	seen, err := a.SieveStateSeen(t.Context(), kind, key)
	if err != nil || seen != want {
		t.Fatalf("SieveStateSeen(%s, %q) = %v, %v; want %v", kind, key, seen, err, want)
	}
}

func markSieveState(t *testing.T, a store.Account, kind store.SieveStateKind, key string, expires time.Time) {
	t.Helper()
	if err := a.MarkSieveState(t.Context(), kind, key, expires); err != nil {
		t.Fatalf("MarkSieveState(%s, %q): %v", kind, key, err)
	}
}

// testSieveState: vacation and duplicate marks are per user and kind,
// count until their expiry only, are replaced by a later mark of the same
// key, survive a reopen, and bad kinds and keys are refused.
func testSieveState(t *testing.T, e *env) {
	a := e.user("u")
	other := e.user("v")
	future := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Second)

	wantSieveState(t, a, store.SieveVacation, "bob@example.org h1", false)
	markSieveState(t, a, store.SieveVacation, "bob@example.org h1", future)
	wantSieveState(t, a, store.SieveVacation, "bob@example.org h1", true)
	wantSieveState(t, a, store.SieveVacation, "Bob@example.org h1", false)
	wantSieveState(t, a, store.SieveDuplicate, "bob@example.org h1", false)
	wantSieveState(t, other, store.SieveVacation, "bob@example.org h1", false)

	// Expired marks count as absent; a later mark replaces the expiry
	// either way.
	markSieveState(t, a, store.SieveDuplicate, "id-1", past)
	wantSieveState(t, a, store.SieveDuplicate, "id-1", false)
	markSieveState(t, a, store.SieveDuplicate, "id-1", future)
	wantSieveState(t, a, store.SieveDuplicate, "id-1", true)
	markSieveState(t, a, store.SieveDuplicate, "id-1", past)
	wantSieveState(t, a, store.SieveDuplicate, "id-1", false)
	// Pruning expired rows on a mark leaves the live ones.
	markSieveState(t, a, store.SieveDuplicate, "id-2", future)
	wantSieveState(t, a, store.SieveVacation, "bob@example.org h1", true)
	wantSieveState(t, a, store.SieveDuplicate, "id-2", true)

	long := strings.Repeat("k", store.SieveStateMaxKey)
	markSieveState(t, a, store.SieveDuplicate, long, future)
	wantSieveState(t, a, store.SieveDuplicate, long, true)
	for _, bad := range []struct {
		kind store.SieveStateKind
		key  string
	}{
		{"other", "k"}, {store.SieveVacation, ""}, {store.SieveVacation, long + "k"},
		{store.SieveVacation, "a\x00b"}, {store.SieveDuplicate, "\xff"},
	} {
		wantErr(t, "MarkSieveState("+string(bad.kind)+")", a.MarkSieveState(e.ctx, bad.kind, bad.key, future), store.ErrInvalidSieveState)
		_, err := a.SieveStateSeen(e.ctx, bad.kind, bad.key)
		wantErr(t, "SieveStateSeen("+string(bad.kind)+")", err, store.ErrInvalidSieveState)
	}

	e.reopen()
	a = e.account("u")
	wantSieveState(t, a, store.SieveVacation, "bob@example.org h1", true)
	wantSieveState(t, a, store.SieveDuplicate, "id-2", true)
	wantSieveState(t, a, store.SieveDuplicate, "id-1", false)
}

// testSieveStateClaim: a claim succeeds once per unexpired period, per
// user and kind; a mark given back (expiring now) can be claimed again;
// of concurrent claims of one key exactly one succeeds.
func testSieveStateClaim(t *testing.T, e *env) {
	a := e.user("u")
	other := e.user("v")
	claim := func(acct store.Account, kind store.SieveStateKind, key string, expires time.Time, want bool) {
		t.Helper()
		got, err := acct.ClaimSieveState(e.ctx, kind, key, expires)
		if err != nil || got != want {
			t.Fatalf("ClaimSieveState(%s, %q) = %v, %v; want %v", kind, key, got, err, want)
		}
	}
	future := time.Now().Add(time.Hour)
	claim(a, store.SieveVacation, "k1", future, true)
	claim(a, store.SieveVacation, "k1", future, false)
	wantSieveState(t, a, store.SieveVacation, "k1", true)
	claim(a, store.SieveDuplicate, "k1", future, true)
	claim(other, store.SieveVacation, "k1", future, true)
	markSieveState(t, a, store.SieveVacation, "k1", time.Now()) // given back
	claim(a, store.SieveVacation, "k1", future, true)
	markSieveState(t, a, store.SieveVacation, "k2", time.Now().Add(-time.Second)) // expired
	claim(a, store.SieveVacation, "k2", future, true)
	_, err := a.ClaimSieveState(e.ctx, "other", "k", future)
	wantErr(t, "ClaimSieveState(other)", err, store.ErrInvalidSieveState)

	const n = 8
	var won atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			acct := e.account("u")
			defer acct.Close()
			ok, err := acct.ClaimSieveState(e.ctx, store.SieveVacation, "race", future)
			if err != nil {
				t.Errorf("concurrent claim: %v", err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of %d concurrent claims succeeded, want 1", won.Load(), n)
	}
}
