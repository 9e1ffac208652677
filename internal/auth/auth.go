package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tern-imap/tern/internal/logctx"
	"github.com/tern-imap/tern/internal/store"
)

// Errors Authenticate returns. Any other error is an internal failure (for
// example the store is unreachable) and should be answered like a failure.
var (
	// ErrInvalidCredentials: unknown user or wrong password (never
	// distinguished, so clients cannot enumerate users).
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrThrottled: too many recent failures for this user or client
	// address; the server should answer NO [UNAVAILABLE]. It has a method
	// Throttled() bool returning true (server.Throttled).
	ErrThrottled error = throttledError{}
)

type throttledError struct{}

func (throttledError) Error() string   { return "too many authentication failures, try again later" }
func (throttledError) Throttled() bool { return true }

// Policy configures failure throttling. Zero fields take the defaults of
// DefaultPolicy.
type Policy struct {
	// FreeFailures is how many failures are answered without delay
	// (negative: none, every failure is delayed).
	FreeFailures int
	// BaseDelay is the delay after FreeFailures failures; it doubles with
	// every further failure up to MaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Window is how long failures are remembered (counted from the first
	// failure of a series).
	Window time.Duration
	// MaxUserFailures and MaxIPFailures lock a username or client address
	// out (ErrThrottled) once reached within Window. A user who logged in
	// successfully from an address within KnownFor is not locked out by
	// that address's count, and counts only their failures from there
	// against MaxUserFailures (see Authenticate).
	MaxUserFailures int
	MaxIPFailures   int
	// KnownFor is how long a successful login keeps a (user, address)
	// pair known.
	KnownFor time.Duration
	// MaxEntries bounds each of the throttling tables (per user, per
	// address, per user and address, known pairs).
	MaxEntries int
}

// DefaultPolicy is used for zero Policy fields.
//
// MaxIPFailures is far above what an office behind one NAT address
// produces: a success forgives the failures its user caused from that
// address, and each user name adds at most MaxUserFailures before it is
// locked itself, so 200 takes twenty user names failing to their own
// lock-out within one window. A password spray from one address is cut
// off after 200 guesses per window.
var DefaultPolicy = Policy{
	FreeFailures:    3,
	BaseDelay:       time.Second,
	MaxDelay:        15 * time.Second,
	Window:          15 * time.Minute,
	MaxUserFailures: 10,
	MaxIPFailures:   200,
	KnownFor:        7 * 24 * time.Hour,
	MaxEntries:      100_000,
}

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy
	if p.FreeFailures == 0 {
		p.FreeFailures = d.FreeFailures
	} else if p.FreeFailures < 0 {
		p.FreeFailures = 0
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = d.MaxDelay
	}
	if p.Window == 0 {
		p.Window = d.Window
	}
	if p.MaxUserFailures == 0 {
		p.MaxUserFailures = d.MaxUserFailures
	}
	if p.MaxIPFailures == 0 {
		p.MaxIPFailures = d.MaxIPFailures
	}
	if p.KnownFor == 0 {
		p.KnownFor = d.KnownFor
	}
	if p.MaxEntries == 0 {
		p.MaxEntries = d.MaxEntries
	}
	return p
}

// Delay returns the delay applied before checking an attempt when
// failures failures are already on record.
func (p Policy) Delay(failures int) time.Duration {
	p = p.withDefaults()
	n := failures - p.FreeFailures
	if n < 0 || p.BaseDelay < 0 {
		return 0
	}
	d := p.BaseDelay
	for i := 0; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// Options configures an Authenticator.
type Options struct {
	Policy Policy
	Logger *slog.Logger
	// Now and Sleep replace the clock in tests. Sleep must return early
	// with ctx.Err() when ctx ends.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// HashSource is the part of store.Store the Authenticator needs.
type HashSource interface {
	// PasswordHash returns store.ErrNoSuchUser for unknown users.
	PasswordHash(ctx context.Context, name string) (string, error)
}

// Authenticator checks passwords against the hashes in a store.Store and
// throttles failures per client address and per username. It implements
// server.Authenticator.
type Authenticator struct {
	st     HashSource
	policy Policy
	log    *slog.Logger
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	dummy  string                                    // hash verified for unknown users (equal timing)
	verify func(hash, password string) (bool, error) // VerifyPassword; tests observe it
	// slotFreed, in tests, runs right after a check gives its hash slot
	// back (a login waiting for the slot may run meanwhile).
	slotFreed func()
	// hashes bounds concurrent hash computations to one per P: each
	// uses 19 MiB, and more at once than can run only compete for the
	// caches (BenchmarkLoginStorm: 28 ms a login at two per P, 18 at one).
	hashes chan struct{}

	mu    sync.Mutex
	users *failureTable // failures per user name (from any address)
	ips   *failureTable // failures per client address (any user)
	pairs *failureTable // failures per (user name, address): forgiven from ips when that user logs in there
	known *failureTable // (user name, address) pairs with a successful login within KnownFor

	// okCache remembers recent successful checks as HMAC(key, stored hash,
	// password), so a user's many devices (and reconnecting IDLE sessions)
	// do not pay a full argon2id check each. The password itself is never
	// kept; a changed password changes the stored hash and misses.
	cacheKey [32]byte
	okMu     sync.Mutex
	okCache  map[[32]byte]time.Time
}

const (
	okCacheTTL = 15 * time.Minute
	okCacheMax = 50000
)

// New returns an Authenticator over st (normally a store.Store).
func New(st HashSource, opts Options) (*Authenticator, error) {
	dummy, err := HashPassword("tern-dummy-password-for-unknown-users")
	if err != nil {
		return nil, fmt.Errorf("new authenticator: %w", err)
	}
	p := opts.Policy.withDefaults()
	a := &Authenticator{
		st:     st,
		policy: p,
		log:    opts.Logger,
		now:    opts.Now,
		sleep:  opts.Sleep,
		dummy:  dummy,
		verify: VerifyPassword,
		hashes: make(chan struct{}, runtime.GOMAXPROCS(0)),
		users:  newFailureTable(p.MaxEntries, p.Window),
		ips:    newFailureTable(p.MaxEntries, p.Window),
		pairs:  newFailureTable(p.MaxEntries, p.Window),
		known:  newFailureTable(p.MaxEntries, p.KnownFor),
	}
	if _, err := rand.Read(a.cacheKey[:]); err != nil {
		return nil, fmt.Errorf("new authenticator: %w", err)
	}
	hashMemory.keepAtLeast(cap(a.hashes)) // a kept matrix for every slot
	a.okCache = make(map[[32]byte]time.Time)
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.sleep == nil {
		a.sleep = sleepCtx
	}
	return a, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxKeyLen bounds the memory a hostile username can pin in the table.
const maxKeyLen = 256

func userKey(username string) string {
	k := strings.ToLower(username)
	if len(k) > maxKeyLen {
		k = k[:maxKeyLen]
	}
	return k
}

// ClientKey returns the key under which a client address is throttled
// and counted: the IPv4 address, or the /64 prefix of an IPv6 address (one
// host or site usually owns a whole /64).
func ClientKey(remote net.Addr) string {
	if remote == nil {
		return "unknown"
	}
	var ip netip.Addr
	switch a := remote.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		host, _, err := net.SplitHostPort(remote.String())
		if err != nil {
			host = remote.String()
		}
		ip, _ = netip.ParseAddr(host)
	}
	if !ip.IsValid() {
		s := remote.String()
		if len(s) > maxKeyLen {
			s = s[:maxKeyLen]
		}
		return s
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}

// Authenticate checks username and password for a client at remote. It
// returns nil on success, ErrThrottled when the user or address is locked
// out, ErrInvalidCredentials for an unknown user or a wrong password, and
// a wrapped error for internal failures. The password is never logged.
//
// Throttling, so that an office behind one NAT address does not pay for
// one another's typos, and a user is not locked out by an attacker
// elsewhere, while attackers are still held back. Failures are counted per
// user name, per address and per (user, address) pair; a pair is "known"
// after a successful login, for KnownFor.
//   - Before the check, an attempt waits Policy.Delay of the user's
//     failures, whatever the outcome (the wait does not tell whether the
//     password was right). At a known address only the user's failures
//     from there count. Other users' failures never delay a correct
//     password.
//   - A wrong password's answer is delayed further, up to Policy.Delay of
//     the address's failures: a sequential guesser from one address slows
//     down across user names.
//   - A user name with MaxUserFailures failures is locked out (at a known
//     address: with MaxUserFailures failures from there). An address with
//     MaxIPFailures failures is locked out, except for its known users.
//   - A success forgives the failures the user made from that address, in
//     the user's and the address's counts; failures of other users, or of
//     this user from other addresses, stay on record.
func (a *Authenticator) Authenticate(ctx context.Context, remote net.Addr, username, password string) error {
	uk, ik := userKey(username), ClientKey(remote)
	pk := uk + "\x00" + ik

	// Only confirmed failures count. Counting attempts up front would lock
	// out a user whose devices log in at the same moment (a phone, a
	// laptop and a few hundred IDLE connections); a parallel guesser gains
	// at most the few checks the hash semaphore lets run at once.
	a.mu.Lock()
	now := a.now()
	uf, ipf := a.users.count(uk, now), a.ips.count(ik, now)
	known := a.known.count(pk, now) > 0
	if known {
		// Where the user logged in recently, only failures from there
		// count: an attacker elsewhere cannot lock them out or slow them.
		uf = a.pairs.count(pk, now)
	}
	a.mu.Unlock()
	log := logctx.Logger(ctx, a.log) // with the session id, if the server gave one
	if uf >= a.policy.MaxUserFailures || (ipf >= a.policy.MaxIPFailures && !known) {
		log.Warn("authentication throttled", "user", username, "ip", ik, "user_failures", uf, "ip_failures", ipf, "known", known)
		return ErrThrottled
	}

	userDelay := a.policy.Delay(uf)
	if err := a.sleep(ctx, userDelay); err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}

	ok, err := a.check(ctx, username, password)
	a.mu.Lock()
	now = a.now()
	switch {
	case ok:
		// Forgive the failures this user made from this address (typos)
		// in the user's and the address's counts, where they belong to
		// the current series. Failures from elsewhere stay: an attacker
		// does not get a fresh allowance each time the user logs in.
		if pf, pfirst := a.pairs.entry(pk, now); pf > 0 {
			if _, ufirst := a.users.entry(uk, now); !pfirst.Before(ufirst) {
				a.users.add(uk, -pf, now)
			}
			if _, ifirst := a.ips.entry(ik, now); !pfirst.Before(ifirst) {
				a.ips.add(ik, -pf, now)
			}
			a.pairs.reset(pk)
		}
		a.known.reset(pk) // restart its KnownFor
		a.known.add(pk, 1, now)
	case err == nil:
		uf = a.users.add(uk, 1, now)
		ipf = a.ips.add(ik, 1, now)
		if pf := a.pairs.add(pk, 1, now); known {
			uf = pf
		}
	}
	a.mu.Unlock()

	switch {
	case ok:
		log.Info("authenticated", "user", username, "ip", ik, "delay", userDelay)
		return nil
	case err != nil:
		log.Error("authentication error", "user", username, "ip", ik, "err", err)
		return fmt.Errorf("authenticate %q: %w", username, err)
	default:
		// The address's failures before this one decide the extra wait.
		extra := max(a.policy.Delay(ipf-1)-userDelay, 0)
		log.Info("authentication failed", "user", username, "ip", ik, "user_failures", uf, "ip_failures", ipf,
			"delay", userDelay+extra)
		if extra > 0 {
			if err := a.sleep(ctx, extra); err != nil {
				return fmt.Errorf("authenticate: %w", err)
			}
		}
		return ErrInvalidCredentials
	}
}

// Stats are the sizes of the throttling tables (each bounded by
// Policy.MaxEntries).
type Stats struct {
	Users, Addresses, Pairs, Known int
}

// Stats returns the current sizes of the throttling tables.
func (a *Authenticator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Stats{Users: a.users.len(), Addresses: a.ips.len(), Pairs: a.pairs.len(), Known: a.known.len()}
}

// remembered reports whether the check mac stands for succeeded within
// okCacheTTL.
func (a *Authenticator) remembered(mac [32]byte) bool {
	a.okMu.Lock()
	at, hit := a.okCache[mac]
	a.okMu.Unlock()
	return hit && a.now().Sub(at) < okCacheTTL
}

// check verifies the password; unknown users are checked against a dummy
// hash so that both cases take the same time.
func (a *Authenticator) check(ctx context.Context, username, password string) (bool, error) {
	hash, err := a.st.PasswordHash(ctx, username)
	unknown := errors.Is(err, store.ErrNoSuchUser)
	if err != nil && !unknown {
		return false, fmt.Errorf("look up password hash: %w", err)
	}
	if hash == "" { // no password set: login disabled
		unknown = true
	}
	if unknown {
		hash = a.dummy
	}
	var mac [32]byte
	if !unknown {
		m := hmac.New(sha256.New, a.cacheKey[:])
		m.Write([]byte(hash))
		m.Write([]byte{0})
		m.Write([]byte(password))
		m.Sum(mac[:0])
		if a.remembered(mac) {
			return true, nil
		}
	}
	select {
	case a.hashes <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// A login of the same user with the same password (the user's other
	// devices, all reconnecting after a restart) may have been verified
	// while this one waited for its turn.
	if !unknown && a.remembered(mac) {
		<-a.hashes
		return true, nil
	}
	ok, verr := a.verify(hash, password)
	if verr == nil && ok && !unknown {
		// Before the slot is given back: a login waiting for it finds
		// the success remembered.
		a.rememberSuccess(mac)
	}
	<-a.hashes
	if a.slotFreed != nil {
		a.slotFreed()
	}
	if verr != nil {
		return false, fmt.Errorf("verify password of %q: %w", username, verr)
	}
	return ok && !unknown, nil
}

// rememberSuccess records that the check mac stands for succeeded now.
func (a *Authenticator) rememberSuccess(mac [32]byte) {
	a.okMu.Lock()
	defer a.okMu.Unlock()
	if len(a.okCache) >= okCacheMax {
		now := a.now()
		for k, at := range a.okCache {
			if now.Sub(at) >= okCacheTTL || len(a.okCache) >= okCacheMax {
				delete(a.okCache, k)
			}
		}
	}
	a.okCache[mac] = a.now()
}
