package crashtest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/pgtest"
)

// ackedMail is what the writers were told was stored: tokens (each in
// one message's subject) and, for APPENDs, the UIDs.
type ackedMail struct {
	mu        sync.Mutex
	tokens    []string
	uids      []uint32
	afterKill int // acknowledged after the node was killed
	killed    atomic.Bool
}

func (a *ackedMail) add(token string, uid uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens = append(a.tokens, token)
	if uid != 0 {
		a.uids = append(a.uids, uid)
	}
	if a.killed.Load() {
		a.afterKill++
	}
}

// failoverMessage is a small message whose subject carries token.
func failoverMessage(token string) []byte {
	return []byte("From: w@example.org\r\nTo: alice@example.org\r\nSubject: " + token + "\r\n\r\nbody of " + token + "\r\n")
}

// dialRetry dials addr (the load balancer) until it answers, for up to 10 s.
func dialRetry(addr string) (*client, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dial(addr)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendWriter APPENDs through addr until stop, reconnecting after any
// failure; only tagged OKs with APPENDUID count as acknowledged.
func appendWriter(addr string, id int, acked *ackedMail, stop <-chan struct{}) {
	var c *client
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		if c == nil {
			var err error
			if c, err = dialRetry(addr); err != nil {
				continue
			}
			if err := c.login("alice", "secret"); err != nil {
				c.close()
				c = nil
				continue
			}
		}
		token := fmt.Sprintf("append-%d-%d", id, n)
		st, err := c.appendMsg("INBOX", "", failoverMessage(token), false)
		if m := appendUIDRe.FindStringSubmatch(st); err == nil && m != nil {
			uid, _ := strconv.ParseUint(m[2], 10, 32)
			acked.add(token, uint32(uid))
		} else {
			c.close()
			c = nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lmtpWriter delivers by LMTP through addr until stop, one connection
// per message; only a 250 after DATA counts as acknowledged.
func lmtpWriter(addr string, acked *ackedMail, stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		token := fmt.Sprintf("lmtp-%d", n)
		if lmtpDeliver(addr, token) == nil {
			acked.add(token, 0)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var errLMTP = errors.New("lmtp: unexpected reply")

func lmtpDeliver(addr, token string) error {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	expect := func(code string) error {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, code) {
				return fmt.Errorf("%w: %q", errLMTP, l)
			}
			if len(l) > 3 && l[3] == ' ' {
				return nil
			}
		}
	}
	steps := []struct{ send, code string }{
		{"", "220"}, {"LHLO failover.test\r\n", "250"}, {"MAIL FROM:<w@example.org>\r\n", "250"},
		{"RCPT TO:<alice@example.org>\r\n", "250"}, {"DATA\r\n", "354"},
		{string(failoverMessage(token)) + ".\r\n", "250"},
	}
	for _, s := range steps {
		if s.send != "" {
			if _, err := nc.Write([]byte(s.send)); err != nil {
				return err
			}
		}
		if err := expect(s.code); err != nil {
			return err
		}
	}
	return nil
}

// syncIdler is a client that keeps INBOX in sync through the load
// balancer: IDLE until told of new mail, then UID FETCH CHANGEDSINCE;
// after a lost connection it reconnects and resynchronises with a
// QRESYNC SELECT from the last modseq it knows.
type syncIdler struct {
	addr       string
	c          *client
	validity   string
	modseq     uint64
	uids       map[uint32]bool
	reconnects int
	wakeups    int
}

var (
	vanishedRe  = regexp.MustCompile(`^\* VANISHED (?:\(EARLIER\) )?(\S+)`)
	modseqRe    = regexp.MustCompile(`MODSEQ \((\d+)\)`)
	highestRe   = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)
	idleExists  = regexp.MustCompile(`^\* \d+ EXISTS`)
	searchAllRe = regexp.MustCompile(`^\* SEARCH(.*)`)
)

// apply takes VANISHED, FETCH and HIGHESTMODSEQ responses into the model.
func (s *syncIdler) apply(us []response) error {
	for _, r := range us {
		if m := vanishedRe.FindStringSubmatch(r.Text); m != nil {
			gone, err := expandSet(m[1])
			if err != nil {
				return err
			}
			for _, u := range gone {
				delete(s.uids, u)
			}
		}
		if strings.Contains(r.Text, " FETCH (") {
			m := fetchUIDRe.FindStringSubmatch(r.Text)
			if m == nil {
				return fmt.Errorf("FETCH without UID: %q", r.Text)
			}
			uid, _ := strconv.ParseUint(m[1], 10, 32)
			s.uids[uint32(uid)] = true
			if ms := modseqRe.FindStringSubmatch(r.Text); ms != nil {
				v, _ := strconv.ParseUint(ms[1], 10, 64)
				s.modseq = max(s.modseq, v)
			}
		}
		if m := highestRe.FindStringSubmatch(r.Text); m != nil {
			s.modseq, _ = strconv.ParseUint(m[1], 10, 64)
		}
	}
	return nil
}

// connect (re)connects and synchronises: a full UID SEARCH the first
// time, a QRESYNC SELECT after that.
func (s *syncIdler) connect() error {
	c, err := dialRetry(s.addr)
	if err != nil {
		return err
	}
	s.c = c
	if err := c.login("alice", "secret"); err != nil {
		return err
	}
	if _, _, err := c.ok("ENABLE QRESYNC"); err != nil {
		return err
	}
	if s.uids == nil {
		us, _, err := c.ok("SELECT INBOX")
		if err != nil {
			return err
		}
		for _, r := range us {
			if m := uidValRe.FindStringSubmatch(r.Text); m != nil {
				s.validity = m[1]
			}
		}
		s.uids = map[uint32]bool{}
		if err := s.apply(us); err != nil {
			return err
		}
		us, _, err = c.ok("UID SEARCH ALL")
		if err != nil {
			return err
		}
		for _, r := range us {
			if m := searchAllRe.FindStringSubmatch(r.Text); m != nil {
				for _, f := range strings.Fields(m[1]) {
					u, _ := strconv.ParseUint(f, 10, 32)
					s.uids[uint32(u)] = true
				}
			}
		}
		return nil
	}
	us, _, err := c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%s %d))", s.validity, s.modseq))
	if err != nil {
		return err
	}
	for _, r := range us {
		if m := uidValRe.FindStringSubmatch(r.Text); m != nil && m[1] != s.validity {
			return fmt.Errorf("UIDVALIDITY changed from %s to %s", s.validity, m[1])
		}
	}
	return s.apply(us)
}

// catchUp asks for what changed since the known modseq.
func (s *syncIdler) catchUp() error {
	us, _, err := s.c.ok(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", s.modseq))
	if err != nil {
		return err
	}
	return s.apply(us)
}

// idleOnce IDLEs until the server reports new mail (or 300 ms pass, or
// stop), ends the IDLE and catches up.
func (s *syncIdler) idleOnce(stop <-chan struct{}) error {
	tag := s.c.nextTag()
	if _, err := fmt.Fprintf(s.c.nc, "%s IDLE\r\n", tag); err != nil {
		return err
	}
	// Updates pending since the last command may come before the
	// continuation.
	for {
		l, err := s.c.readLine()
		if err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
		if strings.HasPrefix(l, "+") {
			break
		}
		if !strings.HasPrefix(l, "* ") {
			return fmt.Errorf("IDLE: %q", l)
		}
	}
	until := time.Now().Add(300 * time.Millisecond)
	var partial string
	for time.Now().Before(until) {
		select {
		case <-stop:
			until = time.Now()
		default:
		}
		s.c.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		l, err := s.c.br.ReadString('\n')
		partial += l
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			return err
		}
		if idleExists.MatchString(partial) {
			s.wakeups++
			break
		}
		partial = ""
	}
	if _, err := fmt.Fprintf(s.c.nc, "DONE\r\n"); err != nil {
		return err
	}
	if _, st, err := s.c.readUntil(tag); err != nil || !strings.HasPrefix(st, "OK") {
		return fmt.Errorf("IDLE end: %q %v", st, err)
	}
	return s.catchUp()
}

// run keeps the idler in sync until stop, then catches up a last time.
func (s *syncIdler) run(stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return s.catchUp()
		default:
		}
		if err := s.idleOnce(stop); err != nil {
			s.c.close()
			s.reconnects++
			if err := s.connect(); err != nil {
				return fmt.Errorf("reconnect: %w", err)
			}
		}
	}
}

// TestFailoverHAProxy: two tern nodes on one PostgreSQL database behind
// HAProxy (TCP). Clients IDLE through it while APPENDs and LMTP
// deliveries flow through it; one node is killed with SIGKILL. The
// clients on it reconnect (through HAProxy, to the other node),
// resynchronise with QRESYNC, and every client ends with exactly the
// mailbox's UIDs, which include every acknowledged APPEND; every
// acknowledged APPEND and LMTP delivery is in the mailbox once.
func TestFailoverHAProxy(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if code, out, errs := runTern(t, "secret\n", "user", "add", "alice", "--store", url, "--data", t.TempDir()); code != 0 {
		t.Fatalf("user add: %d %s %s", code, out, errs)
	}
	var nodes []*server
	var imapNodes, lmtpNodes []string
	for range 2 {
		lmtp := freeAddr(t)
		n := startServer(t, t.TempDir(), "--store", url, "--listen-lmtp", lmtp)
		nodes = append(nodes, n)
		imapNodes = append(imapNodes, n.addr)
		lmtpNodes = append(lmtpNodes, lmtp)
	}
	defer func() {
		for _, n := range nodes[1:] {
			n.stop()
		}
	}()
	lb := startHAProxy(t, imapNodes, lmtpNodes)

	// Idlers, connected one after another: round robin puts half on
	// each node.
	const nIdlers = 6
	idlers := make([]*syncIdler, nIdlers)
	for i := range idlers {
		idlers[i] = &syncIdler{addr: lb.imap}
		if err := idlers[i].connect(); err != nil {
			t.Fatalf("idler %d: %v", i, err)
		}
	}
	stopIdlers := make(chan struct{})
	idleErrs := make([]error, nIdlers)
	var idleWG sync.WaitGroup
	for i, s := range idlers {
		idleWG.Go(func() { idleErrs[i] = s.run(stopIdlers) })
	}

	acked := &ackedMail{}
	stopWriters := make(chan struct{})
	var writeWG sync.WaitGroup
	for i := range 2 {
		writeWG.Go(func() { appendWriter(lb.imap, i, acked, stopWriters) })
	}
	writeWG.Go(func() { lmtpWriter(lb.lmtp, acked, stopWriters) })

	time.Sleep(time.Second)
	acked.killed.Store(true)
	nodes[0].kill()
	killedAt := time.Now()
	time.Sleep(1500 * time.Millisecond)
	close(stopWriters)
	writeWG.Wait()
	close(stopIdlers)
	idleWG.Wait()

	// The mailbox as a fresh client sees it, through the surviving node.
	c, err := dialRetry(lb.imap)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.login("alice", "secret"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ok("SELECT INBOX"); err != nil {
		t.Fatal(err)
	}
	us, _, err := c.ok("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint32]bool{}
	subjects := map[string]int{}
	for _, r := range us {
		m := fetchUIDRe.FindStringSubmatch(r.Text)
		if m == nil || len(r.Lits) != 1 {
			continue
		}
		uid, _ := strconv.ParseUint(m[1], 10, 32)
		have[uint32(uid)] = true
		subj := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(r.Lits[0])), "Subject:"))
		subjects[subj]++
	}

	acked.mu.Lock()
	defer acked.mu.Unlock()
	for _, tok := range acked.tokens {
		if subjects[tok] != 1 {
			t.Errorf("acknowledged %s is in the mailbox %d times", tok, subjects[tok])
		}
	}
	uids := slices.Clone(acked.uids)
	slices.Sort(uids)
	if len(slices.Compact(uids)) != len(acked.uids) {
		t.Errorf("an APPENDUID was given twice: %v", acked.uids)
	}
	reconnects := 0
	for i, s := range idlers {
		if idleErrs[i] != nil {
			t.Errorf("idler %d: %v", i, idleErrs[i])
			continue
		}
		reconnects += s.reconnects
		for _, u := range acked.uids {
			if !s.uids[u] {
				t.Errorf("idler %d (%d reconnects) never learnt of acknowledged UID %d", i, s.reconnects, u)
			}
		}
		if len(s.uids) != len(have) {
			t.Errorf("idler %d knows %d UIDs, the mailbox has %d", i, len(s.uids), len(have))
		}
		for u := range s.uids {
			if !have[u] {
				t.Errorf("idler %d believes in UID %d, which is not in the mailbox", i, u)
			}
		}
	}
	lmtps := 0
	for _, tok := range acked.tokens {
		if strings.HasPrefix(tok, "lmtp-") {
			lmtps++
		}
	}
	t.Logf("%d messages acknowledged (%d APPEND, %d LMTP; %d after the kill), %d in the mailbox; %d idler reconnects; killed %s before the end",
		len(acked.tokens), len(acked.uids), lmtps, acked.afterKill, len(have), reconnects, time.Since(killedAt).Round(time.Millisecond))
	if reconnects == 0 {
		t.Error("no idler had to reconnect: the killed node served none of them")
	}
	if acked.afterKill == 0 || lmtps == 0 {
		t.Errorf("the writers did not get through after the kill (%d acknowledged after it, %d by LMTP)", acked.afterKill, lmtps)
	}
	if t.Failed() {
		t.Logf("haproxy log:\n%s\nsurviving node's log:\n%s", lb.logText(), nodes[1].logTail())
	}
	if code, out, errs := runTern(t, "", "check", "--store", url); code != 0 {
		t.Errorf("tern check after the failover: %d %s %s", code, out, errs)
	}
}
