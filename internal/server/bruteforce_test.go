package server_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
)

// rawLogin is a minimal client for use from goroutines (no t.Fatal): it
// keeps one connection and sends LOGIN commands on it.
type rawLogin struct {
	nc  net.Conn
	br  *bufio.Reader
	tag int
}

func dialLogin(src, addr string) (*rawLogin, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &rawLogin{nc: nc, br: bufio.NewReader(nc)}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	greet, err := r.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(greet, "* OK") {
		nc.Close()
		return nil, fmt.Errorf("greeting %q: %v", greet, err)
	}
	return r, nil
}

// do sends one command and returns the tagged response (without tag) and
// how long it took; a BYE or a read error ends the connection.
func (r *rawLogin) do(cmd string) (string, time.Duration, error) {
	r.tag++
	tag := fmt.Sprintf("a%d", r.tag)
	start := time.Now()
	r.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(r.nc, "%s %s\r\n", tag, cmd); err != nil {
		return "", 0, err
	}
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			return "", 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, tag+" ") {
			return strings.TrimPrefix(line, tag+" "), time.Since(start), nil
		}
		if strings.HasPrefix(line, "* BYE") {
			return "", 0, fmt.Errorf("%s", line)
		}
	}
}

// TestBruteForceEndToEnd runs thousands of wrong logins from several
// addresses through the real listener, with real password hashing, while
// the real users keep logging in:
//   - the attackers slow down (delayed answers) and are locked out
//     (NO [UNAVAILABLE]), so only a bounded number of their guesses are
//     ever checked;
//   - the users they target, logging in from where they always do, and a
//     user at a fresh address, are never refused nor held up;
//   - the throttling tables stay within their bound however many names
//     are tried, and the attack leaves no memory or goroutines behind.
func TestBruteForceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes a few hundred passwords")
	}
	policy := auth.Policy{
		FreeFailures: 2,
		BaseDelay:    20 * time.Millisecond,
		MaxDelay:     160 * time.Millisecond,
		// Longer than the test ever runs: failures leaving the window
		// would let an attacker's address be checked again, which the
		// bounds below do not allow for (under -race on a loaded 2-core
		// machine the attack took 109 s, and a one-minute window let
		// 37-41 guesses per address through).
		Window:          15 * time.Minute,
		MaxUserFailures: 5,
		MaxIPFailures:   25,
		MaxEntries:      64,
	}
	authLog := &logRecorder{}
	ts := newTestServer(t, serverOpts{insecureAuth: true, authPolicy: policy, authLog: slog.New(authLog)})
	for _, u := range []string{"alice", "bob", "carol"} {
		ts.addUser(u, "pw-"+u)
	}
	// The users have logged in from the office before (127.0.0.1).
	for _, u := range []string{"alice", "bob"} {
		c := ts.dial()
		c.ok("LOGIN " + u + " pw-" + u)
		c.ok("LOGOUT")
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	g0, h0 := runtime.NumGoroutine(), heap()

	type tally struct {
		failed, throttled, ok atomic.Int64
		slowest               atomic.Int64 // ns of the slowest AUTHENTICATIONFAILED answer (throttle and hashing)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	attack := func(src string, n int, guess func(i int) string, tl *tally) {
		defer wg.Done()
		var r *rawLogin
		for i := 0; i < n; i++ {
			if r == nil {
				var err error
				if r, err = dialLogin(src, ts.addr); err != nil {
					t.Errorf("attacker %s: %v", src, err)
					return
				}
			}
			tagged, d, err := r.do("LOGIN " + guess(i))
			switch {
			case err != nil: // BYE after too many commands: reconnect
				r.nc.Close()
				r = nil
				i--
			case strings.HasPrefix(tagged, "NO [AUTHENTICATIONFAILED]"):
				tl.failed.Add(1)
				for {
					s := tl.slowest.Load()
					if int64(d) <= s || tl.slowest.CompareAndSwap(s, int64(d)) {
						break
					}
				}
			case strings.HasPrefix(tagged, "NO [UNAVAILABLE]"):
				tl.throttled.Add(1)
			case strings.HasPrefix(tagged, "OK"):
				tl.ok.Add(1)
				r.nc.Close()
				r = nil
			default:
				t.Errorf("attacker %s: unexpected %q", src, tagged)
			}
		}
		if r != nil {
			r.nc.Close()
		}
	}

	// Three attackers, two connections each: guesses at alice's and bob's
	// passwords mixed with a spray over many names. 3 x 2 x 500 = 3000.
	attackers := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	tallies := make([]*tally, len(attackers))
	for a, src := range attackers {
		tallies[a] = &tally{}
		for w := range 2 {
			wg.Add(1)
			go attack(src, 500, func(i int) string {
				switch i % 3 {
				case 0:
					return fmt.Sprintf("alice guess-%d-%d", w, i)
				case 1:
					return fmt.Sprintf("bob guess-%d-%d", w, i)
				}
				return fmt.Sprintf("user%d-%d-%d Summer2025", a, w, i)
			}, tallies[a])
		}
	}
	// A botnet: many addresses, a few names each (under the per-address
	// lock-out), filling the throttling tables past their bound.
	botnet := &tally{}
	for b := range 16 {
		wg.Add(1)
		go attack(fmt.Sprintf("127.0.1.%d", b+1), 5, func(i int) string {
			return fmt.Sprintf("bot%d-%d Password1", b, i)
		}, botnet)
	}

	// Meanwhile the users keep logging in from the office, and carol from
	// an address the server has never seen.
	type result struct {
		who     string
		tagged  string
		latency time.Duration
	}
	var legitMu sync.Mutex
	var legit []result
	var lwg sync.WaitGroup
	for _, who := range []struct{ user, src string }{{"alice", "127.0.0.1"}, {"bob", "127.0.0.1"}, {"carol", "127.0.0.9"}} {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			for !stop.Load() {
				r, err := dialLogin(who.src, ts.addr)
				if err != nil {
					t.Errorf("%s: %v", who.user, err)
					return
				}
				tagged, d, err := r.do("LOGIN " + who.user + " pw-" + who.user)
				if err == nil && strings.HasPrefix(tagged, "OK") {
					_, _, err = r.do("SELECT INBOX")
				}
				r.nc.Close()
				if err != nil {
					tagged = err.Error()
				}
				legitMu.Lock()
				legit = append(legit, result{who.user, tagged, d})
				legitMu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}

	wg.Wait()
	stop.Store(true)
	lwg.Wait()

	// The attackers: locked out, with few of their guesses ever checked,
	// and their later wrong answers slowed down.
	var total int64
	for a, tl := range tallies {
		f, th, ok := tl.failed.Load(), tl.throttled.Load(), tl.ok.Load()
		total += f + th + ok
		t.Logf("attacker %s: %d checked and wrong, %d throttled, slowest wrong answer %v",
			attackers[a], f, th, time.Duration(tl.slowest.Load()))
		if ok != 0 {
			t.Errorf("attacker %s logged in %d times", attackers[a], ok)
		}
		if th < 900 {
			t.Errorf("attacker %s: only %d of 1000 guesses throttled", attackers[a], th)
		}
		// Per address at most MaxIPFailures are checked, plus the guesses
		// already under way on its two connections when it was locked.
		if f > int64(policy.MaxIPFailures)+2 {
			t.Errorf("attacker %s: %d guesses checked, bound %d", attackers[a], f, policy.MaxIPFailures+2)
		}
		// Slowed down: the throttle's own delay (logged with each answer)
		// started at zero and reached its cap.
		var delays []time.Duration
		for _, l := range authLog.find("INFO authentication failed") {
			if attr(l, "ip") == attackers[a] {
				d, err := time.ParseDuration(attr(l, "delay"))
				if err != nil {
					t.Fatalf("delay in %q: %v", l, err)
				}
				delays = append(delays, d)
			}
		}
		if len(delays) == 0 || delays[0] != 0 || slices.Max(delays) != policy.MaxDelay {
			t.Errorf("attacker %s: throttle delays %v, want from 0 up to %v", attackers[a], delays, policy.MaxDelay)
		}
	}
	total += botnet.failed.Load() + botnet.throttled.Load()
	t.Logf("%d wrong logins in all; botnet: %d checked, %d throttled", total, botnet.failed.Load(), botnet.throttled.Load())

	// The users: never refused, never held up by the throttle.
	counts := map[string]int{}
	var slowest time.Duration
	for _, r := range legit {
		counts[r.who]++
		if !strings.HasPrefix(r.tagged, "OK") {
			t.Errorf("%s could not log in during the attack: %q", r.who, r.tagged)
		}
		slowest = max(slowest, r.latency)
	}
	t.Logf("legitimate logins during the attack: %v, slowest %v", counts, slowest)
	for _, u := range []string{"alice", "bob", "carol"} {
		if counts[u] < 3 {
			t.Errorf("%s logged in only %d times during the attack", u, counts[u])
		}
	}
	// Not held up: the throttle delayed none of their logins (the
	// latency logged above is the busy machine's, hashing the attackers'
	// guesses).
	for _, l := range authLog.find("INFO authenticated") {
		if d := attr(l, "delay"); d != "0s" {
			t.Errorf("legitimate login delayed by the throttle: %s", l)
		}
	}
	// No bound on their wall-clock latency: it is the machine's load
	// (a 5 s bound failed on a busy CI machine); the throttle's own delay,
	// checked above, is what the server controls.

	// Bounded memory: the tables at their bound, the sessions gone.
	st := ts.authn.Stats()
	t.Logf("throttling tables: %+v (bound %d)", st, policy.MaxEntries)
	for name, n := range map[string]int{"users": st.Users, "addresses": st.Addresses, "pairs": st.Pairs, "known": st.Known} {
		if n > policy.MaxEntries {
			t.Errorf("%s table has %d entries, bound %d", name, n, policy.MaxEntries)
		}
	}
	if st.Users < policy.MaxEntries {
		t.Errorf("users table has %d entries: the test did not reach the bound %d", st.Users, policy.MaxEntries)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > g0+5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > g0+5 {
		t.Errorf("goroutines: %d before the attack, %d after", g0, g)
	}
	if h := heap(); h > h0+16<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB", h0>>10, h>>10)
	}
	// Whoever is locked out now, the users still get in.
	c := ts.dial()
	c.ok("LOGIN alice pw-alice")
}

// attr returns the value of key=value in a logRecorder line.
func attr(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}
