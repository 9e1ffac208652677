package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// newOfficeAuth returns an Authenticator over many users whose password is
// "pw-<name>", with a cheap stand-in for the argon2id check (this tests the
// throttling arithmetic, not the hash; verify is the hook for that) and a
// fake clock. It counts the password checks made.
func newOfficeAuth(t *testing.T, p Policy, users ...string) (*Authenticator, *fakeClock, *int) {
	t.Helper()
	h := hashes{}
	for _, u := range users {
		h[u] = "plain$pw-" + u
	}
	clk := &fakeClock{now: time.Date(2025, 1, 1, 8, 0, 0, 0, time.UTC)}
	a, err := New(h, Options{Policy: p, Now: clk.Now, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	checks := new(int)
	a.verify = func(hash, pw string) (bool, error) {
		*checks++
		return strings.HasPrefix(hash, "plain$") && hash == "plain$"+pw, nil
	}
	return a, clk, checks
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// sleepOf runs one attempt and returns its result and the time it waited.
func sleepOf(a *Authenticator, clk *fakeClock, ip, user, pw string) (error, time.Duration) {
	clk.mu.Lock()
	n := len(clk.sleeps)
	clk.mu.Unlock()
	err := a.Authenticate(context.Background(), addr(ip), user, pw)
	clk.mu.Lock()
	defer clk.mu.Unlock()
	var d time.Duration
	for _, s := range clk.sleeps[n:] {
		d += s
	}
	return err, d
}

// Behind one NAT address, other users' typos must not slow down a user who
// types the right password and has no failures of their own. Before, every
// login waited Delay(max(user's, address's failures)): three typos from the
// office made every login from it wait.
func TestOtherUsersFailuresDoNotDelayCorrectPassword(t *testing.T) {
	a, clk, _ := newOfficeAuth(t, Policy{}, names("u", 10)...)
	const office = "203.0.113.10:1"
	for i := range 5 { // 5 colleagues, 2 typos each: 10 failures from the address
		for range 2 {
			if err, _ := sleepOf(a, clk, office, fmt.Sprintf("u%d", i), "typo"); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatal(err)
			}
		}
	}
	err, d := sleepOf(a, clk, office, "u7", "pw-u7")
	if err != nil {
		t.Fatalf("correct password: %v", err)
	}
	if d != 0 {
		t.Fatalf("correct password from a user without failures waited %v for colleagues' typos", d)
	}
	// A wrong password from the address is still slowed by its failures.
	if _, d := sleepOf(a, clk, office, "u8", "typo"); d == 0 {
		t.Fatal("wrong password after 10 failures from the address was not delayed")
	}
	// The user's own failures still delay the user, right password or not
	// (so the delay does not tell whether the password was right).
	for range 4 {
		sleepOf(a, clk, "198.51.100.1:1", "u9", "typo")
	}
	if err, d := sleepOf(a, clk, "198.51.100.2:1", "u9", "pw-u9"); err != nil || d != a.policy.Delay(4) {
		t.Fatalf("own failures: %v after %v, want success after %v", err, d, a.policy.Delay(4))
	}
}

// A successful login clears the user's failures and the failures that user
// caused from that address (they were typos, not an attack); it does not
// clear other users' failures from the address, so an attacker cannot wipe
// a spray off the record by logging in to an account of their own.
func TestSuccessForgivesOwnFailuresAtAddress(t *testing.T) {
	a, clk, _ := newOfficeAuth(t, Policy{}, "alice", "mallory")
	const ip = "203.0.113.10:1"
	for range 3 {
		sleepOf(a, clk, ip, "alice", "typo")
	}
	for i := range 5 {
		sleepOf(a, clk, ip, fmt.Sprintf("victim%d", i), "guess")
	}
	ik := ClientKey(addr(ip))
	if n := a.ips.count(ik, clk.Now()); n != 8 {
		t.Fatalf("address failures %d, want 8", n)
	}
	if err, _ := sleepOf(a, clk, ip, "alice", "pw-alice"); err != nil {
		t.Fatal(err)
	}
	if n := a.users.count("alice", clk.Now()); n != 0 {
		t.Fatalf("alice's failures after her success: %d", n)
	}
	if n := a.ips.count(ik, clk.Now()); n != 5 {
		t.Fatalf("address failures after alice's success %d, want 5 (hers forgiven, the others kept)", n)
	}
	if err, _ := sleepOf(a, clk, ip, "mallory", "pw-mallory"); err != nil {
		t.Fatal(err)
	}
	if n := a.ips.count(ik, clk.Now()); n != 5 {
		t.Fatalf("address failures after an unrelated success %d, want 5", n)
	}
	// Failures from another address are not forgiven by a success here.
	sleepOf(a, clk, "198.51.100.7:1", "alice", "typo")
	sleepOf(a, clk, ip, "alice", "pw-alice")
	if n := a.ips.count(ClientKey(addr("198.51.100.7:1")), clk.Now()); n != 1 {
		t.Fatalf("other address's failures %d, want 1", n)
	}
}

// The address-wide lock-out: a busy office (typos, stale passwords on a
// few phones, a misconfigured user name) stays far below it, while a
// password spray from one address is cut off at it; users who recently
// logged in from a locked address keep logging in.
func TestAddressLockoutOfficeVersusSpray(t *testing.T) {
	staff := names("staff", 60)
	a, clk, checks := newOfficeAuth(t, Policy{}, append(staff, "mallory", "newhire")...)
	const office = "203.0.113.10:1"

	// A busy morning at the office, within one failure window.
	for i, u := range staff[:40] { // 40 people log in; every third mistypes twice first
		if i%3 == 0 {
			sleepOf(a, clk, office, u, "typo")
			sleepOf(a, clk, office, u, "typo")
		}
		if err, d := sleepOf(a, clk, office, u, "pw-"+u); err != nil || d != 0 {
			t.Fatalf("%s: %v after %v", u, err, d)
		}
	}
	for _, u := range staff[40:45] { // 5 phones with a stale password, retrying until locked
		for {
			err, _ := sleepOf(a, clk, office, u, "old-password")
			if errors.Is(err, ErrThrottled) {
				break
			}
		}
	}
	for range 10 { // a client configured with the wrong user name
		sleepOf(a, clk, office, "staff1@example.org", "pw-staff1")
	}
	ipf := a.ips.count(ClientKey(addr(office)), clk.Now())
	t.Logf("failures on record for the office address: %d (lock-out at %d)", ipf, a.policy.MaxIPFailures)
	if ipf*3 > a.policy.MaxIPFailures {
		t.Fatalf("a busy office has %d failures on record, too close to the lock-out at %d", ipf, a.policy.MaxIPFailures)
	}
	for _, u := range append(staff[45:], "newhire") { // everyone else still logs in at once
		if err, d := sleepOf(a, clk, office, u, "pw-"+u); err != nil || d != 0 {
			t.Fatalf("%s after the busy morning: %v after %v", u, err, d)
		}
	}

	// A spray from another address: one guess per user name, many at once
	// (the delays do not hold it back; the lock-out must).
	const sprayer = "198.51.100.66:1"
	clk.mu.Lock()
	clk.parallel = true
	clk.mu.Unlock()
	before := *checks
	locked := -1
	for i := range 2000 {
		if i == 50 { // the sprayer's own account does not wipe the record
			if err, _ := sleepOf(a, clk, sprayer, "mallory", "pw-mallory"); err != nil {
				t.Fatal(err)
			}
		}
		err, _ := sleepOf(a, clk, sprayer, fmt.Sprintf("target%d", i), "Winter2025!")
		if errors.Is(err, ErrThrottled) {
			locked = i
			break
		}
	}
	if locked < 0 {
		t.Fatal("2000 guesses from one address were never locked out")
	}
	if got, max := *checks-before, a.policy.MaxIPFailures+1; got > max {
		t.Fatalf("%d passwords checked for the sprayer, want at most %d", got, max)
	}
	t.Logf("spray locked out after %d guesses", locked)
	// Locked: a user never seen at this address is refused even with the
	// right password; the sprayer's own recent account still works (it
	// logged in from here), like an office user would; other addresses
	// are unaffected.
	if err, _ := sleepOf(a, clk, sprayer, "staff50", "pw-staff50"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("new user at a locked address: %v, want ErrThrottled", err)
	}
	if err, _ := sleepOf(a, clk, sprayer, "mallory", "pw-mallory"); err != nil {
		t.Fatalf("user known at the locked address: %v", err)
	}
	if err, d := sleepOf(a, clk, office, "staff51", "pw-staff51"); err != nil || d != 0 {
		t.Fatalf("office during the spray: %v after %v", err, d)
	}
	// After the window the address is free again.
	clk.advance(a.policy.Window)
	if err, _ := sleepOf(a, clk, sprayer, "staff50", "pw-staff50"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// Even a locked-out office keeps working for its members: users who logged
// in successfully from an address recently are let through its lock-out
// (their own per-user limit still applies).
func TestLockedAddressLetsKnownUsersIn(t *testing.T) {
	a, clk, _ := newOfficeAuth(t, Policy{MaxIPFailures: 20}, "alice", "bob")
	const office = "203.0.113.10:1"
	if err, _ := sleepOf(a, clk, office, "alice", "pw-alice"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // an infected machine in the office sprays
		sleepOf(a, clk, office, fmt.Sprintf("x%d", i), "guess")
	}
	if err, _ := sleepOf(a, clk, office, "bob", "pw-bob"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("bob, never seen at the address: %v, want ErrThrottled", err)
	}
	clk.advance(24 * time.Hour) // known for longer than a failure window
	for i := range 20 {
		sleepOf(a, clk, office, fmt.Sprintf("y%d", i), "guess")
	}
	if err, _ := sleepOf(a, clk, office, "alice", "pw-alice"); err != nil {
		t.Fatalf("alice, known at the address: %v", err)
	}
	// Her own lock-out still holds.
	for range 10 {
		sleepOf(a, clk, office, "alice", "typo")
	}
	if err, _ := sleepOf(a, clk, office, "alice", "pw-alice"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("alice after 10 failures of her own: %v, want ErrThrottled", err)
	}
}

// The tables stay bounded whatever an attacker sends.
func TestThrottleTablesBounded(t *testing.T) {
	a, clk, _ := newOfficeAuth(t, Policy{MaxEntries: 50, MaxIPFailures: 1 << 20, MaxUserFailures: 1 << 20}, "alice")
	for i := range 500 {
		sleepOf(a, clk, fmt.Sprintf("10.0.%d.%d:1", i/250, i%250), fmt.Sprintf("n%d", i), "x")
		sleepOf(a, clk, fmt.Sprintf("10.1.%d.%d:1", i/250, i%250), "alice", "pw-alice")
	}
	for name, tb := range map[string]*failureTable{"users": a.users, "ips": a.ips, "pairs": a.pairs, "known": a.known} {
		if tb.len() > 50 {
			t.Errorf("%s table has %d entries, bound 50", name, tb.len())
		}
	}
}

// An attacker guessing a user's password from elsewhere locks that user
// name out for unknown addresses, but not where the user logged in
// recently: there the user's own failures count, and the user is not
// slowed down. The user's logins do not give the attacker a fresh
// allowance.
func TestAttackElsewhereDoesNotLockOutKnownUser(t *testing.T) {
	a, clk, _ := newOfficeAuth(t, Policy{}, "alice")
	const office, attacker = "203.0.113.10:1", "198.51.100.66:1"
	if err, _ := sleepOf(a, clk, office, "alice", "pw-alice"); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err, _ := sleepOf(a, clk, attacker, "alice", "guess"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	if err, _ := sleepOf(a, clk, attacker, "alice", "pw-alice"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("attacker after 10 failures: %v, want ErrThrottled", err)
	}
	if err, _ := sleepOf(a, clk, "192.0.2.77:1", "alice", "pw-alice"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("alice at a new address during the attack: %v, want ErrThrottled", err)
	}
	for range 3 {
		if err, d := sleepOf(a, clk, office, "alice", "pw-alice"); err != nil || d != 0 {
			t.Fatalf("alice at the office during the attack: %v after %v", err, d)
		}
	}
	if err, _ := sleepOf(a, clk, attacker, "alice", "guess"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("attacker after alice's logins: %v, want still ErrThrottled", err)
	}
}
