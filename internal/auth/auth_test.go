package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// hashes is a minimal HashSource: user name -> stored hash.
type hashes map[string]string

func (h hashes) PasswordHash(_ context.Context, name string) (string, error) {
	if name == "broken" {
		return "", errors.New("disk on fire")
	}
	s, ok := h[name]
	if !ok {
		return "", fmt.Errorf("password hash of %q: %w", name, store.ErrNoSuchUser)
	}
	return s, nil
}

type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	// parallel: sleeps do not advance the clock, as for an attacker who
	// runs many attempts at once.
	parallel bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	if !c.parallel {
		c.now = c.now.Add(d)
	}
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) lastSleep() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sleeps) == 0 {
		return -1
	}
	return c.sleeps[len(c.sleeps)-1]
}

func addr(s string) net.Addr {
	ap, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return ap
}

func newTestAuth(t *testing.T, p Policy) (*Authenticator, *fakeClock) {
	t.Helper()
	h1, err := HashPassword("alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPassword("bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, err := New(hashes{"alice": h1, "bob": h2, "nopw": ""}, Options{Policy: p, Now: clk.Now, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	return a, clk
}

var ip1 = addr("192.0.2.1:5000")

func TestAuthenticateBasic(t *testing.T) {
	a, _ := newTestAuth(t, Policy{})
	ctx := context.Background()
	if err := a.Authenticate(ctx, ip1, "alice", "alice-pw"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := a.Authenticate(ctx, ip1, "alice", "bob-pw"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := a.Authenticate(ctx, ip1, "carol", "alice-pw"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	// A user without a password cannot log in, not even with the dummy password.
	if err := a.Authenticate(ctx, ip1, "nopw", "tern-dummy-password-for-unknown-users"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("user without password: %v", err)
	}
	if err := a.Authenticate(ctx, ip1, "nopw", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("user without password, empty password: %v", err)
	}
	// Store failures are not credential failures and are not counted.
	err := a.Authenticate(ctx, ip1, "broken", "x")
	if err == nil || errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrThrottled) {
		t.Fatalf("store error: %v", err)
	}
	if n := a.users.count("broken", time.Now()); n != 0 {
		t.Fatalf("store error counted as failure: %d", n)
	}
}

func TestDelaysGrowAndCap(t *testing.T) {
	a, clk := newTestAuth(t, Policy{MaxUserFailures: 100, MaxIPFailures: 100})
	ctx := context.Background()
	want := []time.Duration{0, 0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}
	for i, w := range want {
		if err := a.Authenticate(ctx, ip1, "alice", "nope"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if got := clk.lastSleep(); got != w {
			t.Errorf("attempt %d: delay %v, want %v", i, got, w)
		}
	}
	// Success after failures is delayed too, then resets the user's count.
	if err := a.Authenticate(ctx, ip1, "alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	if got := clk.lastSleep(); got != 15*time.Second {
		t.Errorf("delay before successful attempt %v, want 15s", got)
	}
	// The user's count is reset; the IP still carries its failures, so use
	// another IP to see the user's own delay.
	if err := a.Authenticate(ctx, addr("192.0.2.99:1"), "alice", "nope"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if got := clk.lastSleep(); got != 0 {
		t.Errorf("delay after reset %v, want 0", got)
	}
}

func TestUserLockout(t *testing.T) {
	a, clk := newTestAuth(t, Policy{})
	ctx := context.Background()
	for i := range 10 {
		// Spread over IPs so only the user count reaches its limit.
		ip := addr(fmt.Sprintf("198.51.100.%d:1", i))
		if err := a.Authenticate(ctx, ip, "alice", "bad"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Locked: even the right password is refused, from any address.
	err := a.Authenticate(ctx, addr("203.0.113.5:1"), "alice", "alice-pw")
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("after 10 failures: %v, want ErrThrottled", err)
	}
	var th interface{ Throttled() bool }
	if !errors.As(err, &th) || !th.Throttled() {
		t.Fatalf("ErrThrottled does not report Throttled()")
	}
	// Usernames are throttled case-insensitively.
	if err := a.Authenticate(ctx, addr("203.0.113.5:1"), "ALICE", "alice-pw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("ALICE after 10 failures: %v, want ErrThrottled", err)
	}
	// Other users are unaffected.
	if err := a.Authenticate(ctx, addr("203.0.113.5:1"), "bob", "bob-pw"); err != nil {
		t.Fatalf("bob: %v", err)
	}
	// After the window the lock is gone.
	clk.advance(15 * time.Minute)
	if err := a.Authenticate(ctx, addr("203.0.113.5:1"), "alice", "alice-pw"); err != nil {
		t.Fatalf("after window: %v", err)
	}
}

func TestIPLockout(t *testing.T) {
	a, _ := newTestAuth(t, Policy{MaxIPFailures: 5})
	ctx := context.Background()
	for i := range 5 {
		if err := a.Authenticate(ctx, ip1, fmt.Sprintf("user%d", i), "bad"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if err := a.Authenticate(ctx, addr("192.0.2.1:6000"), "bob", "bob-pw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("same IP other port: %v, want ErrThrottled", err)
	}
	if err := a.Authenticate(ctx, addr("192.0.2.2:6000"), "bob", "bob-pw"); err != nil {
		t.Fatalf("other IP: %v", err)
	}
}

func TestIPv6PrefixGrouping(t *testing.T) {
	a, _ := newTestAuth(t, Policy{MaxIPFailures: 3})
	ctx := context.Background()
	for i := range 3 {
		ip := addr(fmt.Sprintf("[2001:db8:1:2::%x]:1", i+1))
		if err := a.Authenticate(ctx, ip, fmt.Sprintf("u%d", i), "bad"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	if err := a.Authenticate(ctx, addr("[2001:db8:1:2:ffff::1]:1"), "bob", "bob-pw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("same /64: %v", err)
	}
	if err := a.Authenticate(ctx, addr("[2001:db8:1:3::1]:1"), "bob", "bob-pw"); err != nil {
		t.Fatalf("other /64: %v", err)
	}
	if got, want := ClientKey(addr("[::ffff:192.0.2.7]:1")), "192.0.2.7"; got != want {
		t.Errorf("ClientKey(v4-mapped) = %q, want %q", got, want)
	}
}

// Many devices logging in at once as the same user are not throttled: only
// confirmed failures count, never attempts still being checked.
func TestConcurrentLoginsNotThrottled(t *testing.T) {
	a, _ := newTestAuth(t, Policy{MaxUserFailures: 4, MaxIPFailures: 4})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[error]int{}
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := a.Authenticate(context.Background(), ip1, "alice", "alice-pw")
			mu.Lock()
			counts[err]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[nil] != 40 {
		t.Fatalf("results %v; want 40 successes", counts)
	}
	// Failures still lock out once confirmed.
	for range 4 {
		if err := a.Authenticate(context.Background(), ip1, "alice", "bad"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	if err := a.Authenticate(context.Background(), ip1, "alice", "alice-pw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after 4 failures: %v", err)
	}
}

// Unknown users cost a full hash verification, like known ones.
func TestUnknownUserCostsTheSameHashCheck(t *testing.T) {
	a, _ := newTestAuth(t, Policy{MaxUserFailures: 1000, MaxIPFailures: 1000})
	var hashes []string
	a.verify = func(hash, pw string) (bool, error) {
		hashes = append(hashes, hash)
		return VerifyPassword(hash, pw)
	}
	ctx := context.Background()
	for _, user := range []string{"alice", "nobody"} {
		if err := a.Authenticate(ctx, ip1, user, "wrong"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("%s: %v", user, err)
		}
	}
	if len(hashes) != 2 {
		t.Fatalf("%d hash checks for 2 attempts", len(hashes))
	}
	// Same algorithm and cost parameters: same work for both.
	params := func(h string) string { return h[:strings.LastIndex(h[:strings.LastIndex(h, "$")], "$")] }
	if params(hashes[0]) != params(hashes[1]) {
		t.Fatalf("known user checked with %q, unknown with %q", params(hashes[0]), params(hashes[1]))
	}
}

func TestFailureTableBounded(t *testing.T) {
	ft := newFailureTable(3, time.Minute)
	now := time.Now()
	for i := range 5 {
		ft.add(fmt.Sprint(i), 1, now)
	}
	if ft.len() != 3 {
		t.Fatalf("len %d, want 3", ft.len())
	}
	// Keys 0 and 1 were least recently touched and evicted.
	if ft.count("0", now) != 0 || ft.count("1", now) != 0 || ft.count("4", now) != 1 {
		t.Fatalf("wrong entries evicted")
	}
	// Touching 2 protects it from the next eviction.
	ft.add("2", 1, now)
	ft.add("5", 1, now)
	if ft.count("2", now) != 2 || ft.count("3", now) != 0 {
		t.Fatalf("LRU order not kept")
	}
	// Expired entries count as zero and are dropped.
	if ft.count("2", now.Add(time.Minute)) != 0 || ft.len() != 2 {
		t.Fatalf("expired entry kept: len %d", ft.len())
	}
}

func TestPolicyDelay(t *testing.T) {
	p := Policy{FreeFailures: 2, BaseDelay: 500 * time.Millisecond, MaxDelay: 3 * time.Second}
	for n, want := range []time.Duration{0, 0, 500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second} {
		if got := p.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
	if got := (Policy{FreeFailures: -1}).Delay(0); got != time.Second {
		t.Errorf("Delay(0) with no free failures = %v, want 1s", got)
	}
	if got := p.Delay(1 << 20); got != 3*time.Second {
		t.Errorf("Delay(huge) = %v", got)
	}
}

func TestParsePlain(t *testing.T) {
	for _, tc := range []struct {
		in         string
		user, pass string
		err        error
	}{
		{"\x00alice\x00secret", "alice", "secret", nil},
		{"alice\x00alice\x00secret", "alice", "secret", nil},
		{"\x00alice\x00", "alice", "", nil},
		{"\x00alice\x00pa ss", "alice", "pa ss", nil},
		{"bob\x00alice\x00secret", "", "", ErrAuthzid},
		{"\x00\x00secret", "", "", ErrBadPlain},
		{"alice\x00secret", "", "", ErrBadPlain},
		{"\x00alice\x00sec\x00ret", "", "", ErrBadPlain},
		{"", "", "", ErrBadPlain},
	} {
		u, p, err := ParsePlain([]byte(tc.in))
		if u != tc.user || p != tc.pass || !errors.Is(err, tc.err) {
			t.Errorf("ParsePlain(%q) = %q, %q, %v; want %q, %q, %v", tc.in, u, p, err, tc.user, tc.pass, tc.err)
		}
	}
}

// A repeated successful login skips the argon2id check; a wrong password or
// a changed stored hash never hits the cache.
func TestSuccessCache(t *testing.T) {
	a, _ := newTestAuth(t, Policy{})
	calls := 0
	a.verify = func(hash, pw string) (bool, error) {
		calls++
		return VerifyPassword(hash, pw)
	}
	ctx := context.Background()
	for range 3 {
		if err := a.Authenticate(ctx, ip1, "alice", "alice-pw"); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("%d hash checks for 3 logins with the same password", calls)
	}
	if err := a.Authenticate(ctx, ip1, "alice", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password after a cached success: %v", err)
	}
	if calls != 2 {
		t.Fatalf("wrong password skipped the hash check")
	}
}

// Logins of one user with the same password that wait for a turn to hash
// (more of them at once than hashes are computed at once: the user's
// devices reconnecting after a restart) find the first one's success
// remembered instead of each computing argon2id again.
func TestSuccessCacheWhileWaiting(t *testing.T) {
	// The success must be remembered before the hash slot is given back:
	// a waiter that took the slot in between hashed again (once in a CI
	// run under load). The pause after the slot is freed holds that
	// window open.
	for round := range 3 {
		a, _ := newTestAuth(t, Policy{})
		a.hashes = make(chan struct{}, 1)
		a.slotFreed = func() { time.Sleep(5 * time.Millisecond) }
		var calls atomic.Int32
		a.verify = func(hash, pw string) (bool, error) {
			calls.Add(1)
			time.Sleep(5 * time.Millisecond) // the others queue meanwhile
			return VerifyPassword(hash, pw)
		}
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- a.Authenticate(ctx, ip1, "alice", "alice-pw") })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("round %d: %d hash checks for 8 concurrent logins with the same password, one at a time", round, n)
		}
	}
}

// BenchmarkLoginStorm times logins of distinct users arriving all at once
// (clients reconnecting after a restart or a failover): per login, with
// the Authenticator's bound on concurrent hash computations.
func BenchmarkLoginStorm(b *testing.B) {
	const users = 16
	src := hashes{}
	for i := range users {
		h, err := HashPassword("storm") // its own salt: no login hits another's cached success
		if err != nil {
			b.Fatal(err)
		}
		src[fmt.Sprintf("u%d", i)] = h
	}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	for b.Loop() {
		b.StopTimer()
		a, err := New(src, Options{}) // a cold success cache
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		var wg sync.WaitGroup
		for name := range src {
			wg.Go(func() {
				if err := a.Authenticate(context.Background(), remote, name, "storm"); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*users), "ms/login")
}
