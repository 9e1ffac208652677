package crashtest

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashDuration is how long TestCrashRecovery keeps killing the server:
// TERN_CRASH_DURATION (Go duration), else 3s with -short, else 5s.
func crashDuration(t *testing.T) time.Duration {
	if s := os.Getenv("TERN_CRASH_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TERN_CRASH_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 3 * time.Second
	}
	return 5 * time.Second
}

// entry is what the test knows about one UID of a mailbox.
type entry struct {
	sum      [32]byte
	must     bool // acknowledged and not being expunged: must survive any crash
	ackGen   int  // last STORE FLAGS generation acknowledged (storer, odd UIDs)
	pendGen  int  // last generation sent
	hasFlags bool
}

// model is the acknowledged state, shared by the load workers.
type model struct {
	mu       sync.Mutex
	msgs     map[string]map[uint32]*entry // mailbox -> uid -> entry
	gone     map[string]map[uint32]bool   // UIDs whose UID EXPUNGE was acknowledged
	maxUID   map[string]uint32            // highest UID ever seen
	validity map[string]uint32
	errs     []string
	acked    int // APPENDs acknowledged in total
	copies   int
	expunged int
	stores   int
}

var mailboxes = []string{"INBOX", "Scratch"}

func newModel() *model {
	m := &model{msgs: map[string]map[uint32]*entry{}, gone: map[string]map[uint32]bool{},
		maxUID: map[string]uint32{}, validity: map[string]uint32{}}
	for _, mb := range mailboxes {
		m.msgs[mb] = map[uint32]*entry{}
		m.gone[mb] = map[uint32]bool{}
	}
	return m
}

func (m *model) fail(format string, args ...any) {
	m.errs = append(m.errs, fmt.Sprintf(format, args...))
}

// learn records that uid in mb has content sum (called with mu held). A
// UID seen before with other content, or after its expunge, is a reused UID.
func (m *model) learn(mb string, uid uint32, sum [32]byte, what string) *entry {
	if m.gone[mb][uid] {
		m.fail("%s: %s UID %d was expunged before: UID reused", mb, what, uid)
	}
	e := m.msgs[mb][uid]
	if e != nil && e.sum != sum {
		m.fail("%s: %s UID %d has other content than before: UID reused or body damaged", mb, what, uid)
	}
	if e == nil {
		e = &entry{sum: sum}
		m.msgs[mb][uid] = e
	}
	m.maxUID[mb] = max(m.maxUID[mb], uid)
	return e
}

func (m *model) checkValidity(mb string, v uint32) {
	if old, ok := m.validity[mb]; ok && old != v {
		m.fail("%s: UIDVALIDITY changed from %d to %d", mb, old, v)
	}
	m.validity[mb] = v
}

// pick returns up to n random UIDs of mb that must exist and satisfy keep.
func (m *model) pick(r *rand.Rand, mb string, n int, keep func(uint32) bool) []uint32 {
	var all []uint32
	for uid, e := range m.msgs[mb] {
		if e.must && keep(uid) {
			all = append(all, uid)
		}
	}
	slices.Sort(all)
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:min(n, len(all))]
}

func joinUIDs(uids []uint32) string {
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = strconv.FormatUint(uint64(u), 10)
	}
	return strings.Join(s, ",")
}

// randomMessage returns a unique message of random size (a few hundred
// bytes up to ~256 KiB) with CRLF line ends.
func randomMessage(r *rand.Rand, worker, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Load %d <load%d@example.org>\r\nTo: alice@example.org\r\nSubject: message %d-%d %x\r\nMessage-ID: <%d.%d.%x@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		worker, worker, worker, n, r.Uint64(), worker, n, r.Uint64())
	lines := 1 + r.IntN(20)
	if r.IntN(10) == 0 {
		lines = 500 + r.IntN(3500)
	}
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&b, "line %d of %d: %x %x\r\n", i, lines, r.Uint64(), r.Uint64())
	}
	return []byte(b.String())
}

var loginMu sync.Mutex

// worker runs one kind of load on its own connection until the connection
// dies (the server was killed) or stop is closed.
func runWorker(addr string, m *model, kind string, id int, seed uint64, stop <-chan struct{}, ready func()) {
	defer ready() // at the latest
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	c, err := dial(addr)
	if err != nil {
		return
	}
	defer c.close()
	// One login at a time: internal/auth counts a login in flight as a
	// failure until it completes, so concurrent logins of one user are
	// delayed like failures (see the hardening report).
	loginMu.Lock()
	err = c.login("alice", "secret")
	loginMu.Unlock()
	if err != nil {
		return
	}
	ready()
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	switch kind {
	case "append":
		for n := 0; !stopped(); n++ {
			mb := "INBOX"
			if r.IntN(4) == 0 {
				mb = "Scratch"
			}
			body := randomMessage(r, id, n)
			flags := ""
			if r.IntN(3) == 0 {
				flags = `\Seen $Load`
			}
			st, err := c.appendMsg(mb, flags, body, r.IntN(2) == 0)
			if err != nil {
				return
			}
			mm := appendUIDRe.FindStringSubmatch(st)
			m.mu.Lock()
			if mm == nil {
				m.fail("APPEND to %s: %q", mb, st)
				m.mu.Unlock()
				return
			}
			v, _ := strconv.ParseUint(mm[1], 10, 32)
			uid, _ := strconv.ParseUint(mm[2], 10, 32)
			m.checkValidity(mb, uint32(v))
			m.learn(mb, uint32(uid), sha256.Sum256(body), "APPENDUID").must = true
			m.acked++
			m.mu.Unlock()
		}
	case "copy":
		if _, _, err := c.ok("SELECT INBOX"); err != nil {
			return
		}
		for !stopped() {
			m.mu.Lock()
			src := m.pick(r, "INBOX", 1+r.IntN(3), func(uint32) bool { return true })
			m.mu.Unlock()
			if len(src) == 0 {
				if _, _, err := c.ok("NOOP"); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if _, _, err := c.ok("NOOP"); err != nil {
				return
			}
			_, st, err := c.do("UID COPY " + joinUIDs(src) + " Scratch")
			if err != nil {
				return
			}
			if !strings.HasPrefix(st, "OK") {
				m.mu.Lock()
				m.fail("UID COPY %v: %q", src, st)
				m.mu.Unlock()
				return
			}
			mm := copyUIDRe.FindStringSubmatch(st)
			if mm == nil {
				continue // all sources were expunged meanwhile
			}
			from, err1 := expandSet(mm[2])
			to, err2 := expandSet(mm[3])
			m.mu.Lock()
			if err1 != nil || err2 != nil || len(from) != len(to) {
				m.fail("bad COPYUID in %q", st)
			} else {
				v, _ := strconv.ParseUint(mm[1], 10, 32)
				m.checkValidity("Scratch", uint32(v))
				for i := range from {
					if se := m.msgs["INBOX"][from[i]]; se != nil {
						m.learn("Scratch", to[i], se.sum, "COPYUID").must = true
						m.copies++
					}
				}
			}
			m.mu.Unlock()
		}
	case "expunge":
		for !stopped() {
			mb := mailboxes[r.IntN(2)]
			if _, _, err := c.ok("SELECT " + mb); err != nil {
				return
			}
			for i := 0; i < 5 && !stopped(); i++ {
				m.mu.Lock()
				n := 1 + r.IntN(3)
				if len(m.msgs[mb]) > 150 {
					n = 20
				}
				// Odd INBOX UIDs belong to the flag storer.
				uids := m.pick(r, mb, n, func(u uint32) bool { return mb != "INBOX" || u%2 == 0 })
				for _, u := range uids {
					m.msgs[mb][u].must = false
				}
				m.mu.Unlock()
				if len(uids) == 0 {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				set := joinUIDs(uids)
				// The UIDs came from other sessions' APPENDUID: NOOP first
				// so that this session's view has them (a UID a session has
				// not been told about is ignored, RFC 9051 §6.4.9).
				if _, _, err := c.ok("NOOP"); err != nil {
					return
				}
				if _, _, err := c.ok(`UID STORE ` + set + ` +FLAGS.SILENT (\Deleted)`); err != nil {
					return
				}
				us, st, err := c.do("UID EXPUNGE " + set)
				if err != nil {
					return
				}
				if n := countExpunges(us); strings.HasPrefix(st, "OK") && n != len(uids) {
					m.mu.Lock()
					m.fail("UID EXPUNGE %s: %d EXPUNGE responses, want %d", set, n, len(uids))
					m.mu.Unlock()
				}
				m.mu.Lock()
				if !strings.HasPrefix(st, "OK") {
					m.fail("UID EXPUNGE: %q", st)
				} else {
					for _, u := range uids {
						delete(m.msgs[mb], u)
						m.gone[mb][u] = true
						m.expunged++
					}
				}
				m.mu.Unlock()
			}
		}
	case "store":
		if _, _, err := c.ok("SELECT INBOX"); err != nil {
			return
		}
		for !stopped() {
			m.mu.Lock()
			uids := m.pick(r, "INBOX", 1, func(u uint32) bool { return u%2 == 1 })
			var e *entry
			gen := 0
			if len(uids) == 1 {
				e = m.msgs["INBOX"][uids[0]]
				e.pendGen++
				gen = e.pendGen
			}
			m.mu.Unlock()
			if e == nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if _, _, err := c.ok("NOOP"); err != nil {
				return
			}
			_, st, err := c.do(fmt.Sprintf(`UID STORE %d FLAGS (\Seen $g%d)`, uids[0], gen%100))
			if err != nil {
				return
			}
			m.mu.Lock()
			if !strings.HasPrefix(st, "OK") {
				m.fail("UID STORE: %q", st)
			} else {
				e.ackGen, e.hasFlags = gen, true
				m.stores++
			}
			m.mu.Unlock()
		}
	}
}

func countExpunges(us []response) int {
	n := 0
	for _, u := range us {
		if strings.HasSuffix(u.Text, " EXPUNGE") {
			n++
		}
	}
	return n
}

// verify checks the store after a restart against the model.
func verify(t *testing.T, addr string, m *model) {
	t.Helper()
	c, err := dial(addr)
	if err != nil {
		t.Fatalf("verify: dial: %v", err)
	}
	defer c.close()
	if err := c.login("alice", "secret"); err != nil {
		t.Fatalf("verify: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mb := range mailboxes {
		us, _, err := c.ok("SELECT " + mb)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		for _, u := range us {
			if mm := uidValRe.FindStringSubmatch(u.Text); mm != nil {
				v, _ := strconv.ParseUint(mm[1], 10, 32)
				m.checkValidity(mb, uint32(v))
			}
		}
		us, _, err = c.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[])")
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		got, err := parseFetch(us)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		present := map[uint32]bool{}
		for _, f := range got {
			present[f.uid] = true
			e := m.learn(mb, f.uid, sha256.Sum256(f.body), "stored")
			// Whatever survived a crash is committed: it must stay.
			e.must = true
			if e.hasFlags {
				found := -1
				for _, g := range []int{e.pendGen, e.ackGen} {
					if found < 0 && slices.Contains(f.flags, fmt.Sprintf("$g%d", g%100)) {
						found = g
					}
				}
				if found < 0 {
					m.fail("%s UID %d: flags %v lost the acknowledged STORE $g%d", mb, f.uid, f.flags, e.ackGen%100)
				}
				// Whatever is there now is durable.
				e.ackGen, e.pendGen = found, found
			}
		}
		for uid, e := range m.msgs[mb] {
			if present[uid] {
				continue
			}
			if e.must {
				m.fail("%s: acknowledged UID %d is missing after the crash", mb, uid)
			}
			// An interrupted expunge that did happen.
			delete(m.msgs[mb], uid)
			m.gone[mb][uid] = true
		}
		us, _, err = c.ok("STATUS " + mb + " (UIDNEXT)")
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		for _, u := range us {
			if mm := uidNextRe.FindStringSubmatch(u.Text); mm != nil {
				next, _ := strconv.ParseUint(mm[1], 10, 32)
				if uint32(next) <= m.maxUID[mb] {
					m.fail("%s: UIDNEXT %d not above the highest UID ever seen %d", mb, next, m.maxUID[mb])
				}
			}
		}
	}
	c.ok("LOGOUT")
	if len(m.errs) > 0 {
		t.Fatalf("after restart:\n%s", strings.Join(m.errs, "\n"))
	}
}

// TestCrashRecovery runs concurrent APPEND/COPY/STORE/EXPUNGE load against
// the real binary, SIGKILLs it at a random moment, checks the store with
// tern check, restarts it and verifies every acknowledged write survived,
// no UID was reused and UIDVALIDITY never changed. Repeats for
// crashDuration, alternating store.fsync always and optimized.
func TestCrashRecovery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	newDataDir(t, dir)
	{
		s := startServer(t, dir)
		c, err := dial(s.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.login("alice", "secret"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ok("CREATE Scratch"); err != nil {
			t.Fatal(err)
		}
		c.close()
		s.stop()
	}
	m := newModel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	deadline := time.Now().Add(crashDuration(t))
	// Every other run uses store.fsync = "optimized": flag changes and
	// expunges then commit without an fsync, which must still survive a
	// crash of the process (only a power failure may undo them).
	optimized := filepath.Join(t.TempDir(), "optimized.toml")
	if err := os.WriteFile(optimized, []byte("[store]\nfsync = \"optimized\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	iters, leftovers := 0, 0
	for ; iters == 0 || time.Now().Before(deadline); iters++ {
		t0 := time.Now()
		var extra []string
		if iters%2 == 1 {
			extra = []string{"--config", optimized}
		}
		s := startServer(t, dir, extra...)
		t1 := time.Now()
		verify(t, s.addr, m)
		t2 := time.Now()
		stop := make(chan struct{})
		var wg, ready sync.WaitGroup
		kinds := []string{"append", "append", "append", "copy", "expunge", "store"}
		for i, k := range kinds {
			wg.Add(1)
			ready.Add(1)
			go func() {
				defer wg.Done()
				var once sync.Once
				runWorker(s.addr, m, k, i, seed+uint64(iters)*100, stop, func() { once.Do(ready.Done) })
			}()
		}
		ready.Wait() // all logged in: the kill lands under load
		t3 := time.Now()
		time.Sleep(time.Duration(20+r.IntN(500)) * time.Millisecond)
		s.kill()
		close(stop)
		wg.Wait()
		m.mu.Lock()
		if len(m.errs) > 0 {
			t.Fatalf("iteration %d:\n%s\nserver log:\n%s", iters, strings.Join(m.errs, "\n"), s.logTail())
		}
		m.mu.Unlock()
		t4 := time.Now()
		leftovers += checkStore(t, dir, true)
		if os.Getenv("TERN_CRASH_DEBUG") != "" {
			t.Logf("start %v verify %v login %v load %v check %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3), time.Since(t4))
		}
	}
	s := startServer(t, dir)
	verify(t, s.addr, m)
	s.stop()
	if code, out, errs := runTern(t, "", "check", "--data", dir); code != 0 {
		t.Fatalf("final tern check: %d\n%s%s", code, out, errs)
	}
	t.Logf("%d SIGKILLs; %d APPENDs, %d copies, %d expunges, %d flag stores acknowledged and verified; %d leftover body files of interrupted writes removed by tern check --repair",
		iters, m.acked, m.copies, m.expunged, m.stores, leftovers)
	if m.acked == 0 {
		t.Fatal("no APPEND was acknowledged: the test proved nothing")
	}
}
