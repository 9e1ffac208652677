package outbound

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// received is one message the test relay accepted.
type received struct {
	from string
	to   []string
	data string
}

// relay is a go-smtp server on loopback that records accepted messages.
// fail decides the answer to each DATA (nil accepts); rejectRcpt refuses
// a recipient permanently.
type relay struct {
	addr string

	mu         sync.Mutex
	got        []received
	attempts   int
	fail       func(attempt int) error
	rejectRcpt string
}

func startRelay(t *testing.T, addr string) *relay {
	t.Helper()
	r := &relay{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &relaySession{r: r}, nil
	}))
	s.Domain = "relay.test"
	s.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return r
}

func (r *relay) setFail(f func(attempt int) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = f
}

func (r *relay) messages() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

type relaySession struct {
	r    *relay
	from string
	to   []string
}

func (s *relaySession) Reset()        { s.from, s.to = "", nil }
func (s *relaySession) Logout() error { return nil }
func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	reject := s.r.rejectRcpt
	s.r.mu.Unlock()
	if to == reject {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *relaySession) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.attempts++
	var ferr error
	if s.r.fail != nil {
		ferr = s.r.fail(s.r.attempts)
	}
	if ferr == nil {
		s.r.got = append(s.r.got, received{s.from, s.to, string(b)})
	}
	s.r.mu.Unlock()
	return ferr
}

func openQueue(t *testing.T, dir, relayAddr string) *Queue {
	t.Helper()
	level := slog.LevelError
	if os.Getenv("TERN_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	q, err := Open(dir, Options{Relay: relayAddr, Hostname: "tern.test", RetryBase: 50 * time.Millisecond,
		Timeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	return q
}

// waitFor polls cond until it holds (the worker runs on its own).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spoolFiles lists the messages (not their retry states) in a spool
// subdirectory.
func spoolFiles(t *testing.T, dir, sub string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !isRetryFile(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

const reply = "From: alice@example.org\r\nTo: bob@example.net\r\nAuto-Submitted: auto-replied\r\nSubject: Auto: hi\r\n\r\nAway.\r\n"

// A message goes out once, with its envelope (null sender included), and
// leaves the spool.
func TestSend(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0")
	dir := t.TempDir()
	q := openQueue(t, dir, r.addr)
	if _, err := q.Enqueue(context.Background(), Message{From: "", To: []string{"bob@example.net"}, Data: []byte(reply)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return len(r.messages()) == 1 && q.Len() == 0 })
	m := r.messages()[0]
	if m.from != "" || !slices.Equal(m.to, []string{"bob@example.net"}) || m.data != reply {
		t.Fatalf("relay got %+v", m)
	}
	if f := spoolFiles(t, dir, "queue"); len(f) != 0 {
		t.Fatalf("spool after sending: %v", f)
	}
	// Reopening finds nothing to send again.
	q.Close(context.Background())
	q = openQueue(t, dir, r.addr)
	if q.Len() != 0 {
		t.Fatalf("%d messages queued after a restart", q.Len())
	}
}

// Temporary failures (451) are retried with backoff until the relay
// takes the message, which it then has exactly once.
func TestRetryTemporaryFailure(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0")
	r.setFail(func(n int) error {
		if n <= 3 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	})
	dir := t.TempDir()
	q := openQueue(t, dir, r.addr)
	if _, err := q.Enqueue(context.Background(), Message{From: "alice@example.org", To: []string{"bob@example.net"}, Data: []byte(reply)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after retries", func() bool { return q.Len() == 0 })
	r.mu.Lock()
	attempts := r.attempts
	r.mu.Unlock()
	if attempts != 4 || len(r.messages()) != 1 {
		t.Fatalf("%d attempts, %d messages accepted; want 4 and 1", attempts, len(r.messages()))
	}
}

// With the relay down, messages wait in the spool across a restart and go
// out once it is up.
func TestRelayDownAndRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	dir := t.TempDir()
	q := openQueue(t, dir, addr)
	for _, to := range []string{"a@example.net", "b@example.net"} {
		if _, err := q.Enqueue(context.Background(), Message{To: []string{to}, Data: []byte(reply)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f := spoolFiles(t, dir, "queue"); len(f) != 2 {
		t.Fatalf("spool after the relay was down: %v", f)
	}
	r := startRelay(t, addr)
	q = openQueue(t, dir, r.addr)
	waitFor(t, "delivery after restart", func() bool { return q.Len() == 0 })
	var to []string
	for _, m := range r.messages() {
		to = append(to, m.to...)
	}
	slices.Sort(to)
	if !slices.Equal(to, []string{"a@example.net", "b@example.net"}) {
		t.Fatalf("relay got mail for %v", to)
	}
}

// A permanent refusal is not retried: the message moves to failed/. A
// recipient refused alone is left out and the others get the message.
func TestPermanentFailure(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0")
	r.setFail(func(int) error {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected"}
	})
	dir := t.TempDir()
	q := openQueue(t, dir, r.addr)
	if _, err := q.Enqueue(context.Background(), Message{To: []string{"bob@example.net"}, Data: []byte(reply)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal", func() bool { return q.Len() == 0 })
	if f := spoolFiles(t, dir, "failed"); len(f) != 1 {
		t.Fatalf("failed/ = %v", f)
	}
	r.mu.Lock()
	attempts := r.attempts
	r.fail = nil
	r.rejectRcpt = "nobody@example.net"
	r.mu.Unlock()
	if attempts != 1 {
		t.Fatalf("%d attempts of a permanently refused message", attempts)
	}

	if _, err := q.Enqueue(context.Background(), Message{To: []string{"nobody@example.net", "bob@example.net"}, Data: []byte(reply)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partial delivery", func() bool { return q.Len() == 0 })
	if got := r.messages(); len(got) != 1 || !slices.Equal(got[0].to, []string{"bob@example.net"}) {
		t.Fatalf("relay got %+v", got)
	}
}

func TestEnqueueRejectsBadInput(t *testing.T) {
	q := openQueue(t, t.TempDir(), "127.0.0.1:1")
	for _, m := range []Message{
		{Data: []byte(reply)},
		{To: []string{"a@b\r\nRCPT TO:<c@d>"}, Data: []byte(reply)},
		{From: "x>", To: []string{"a@b"}, Data: []byte(reply)},
	} {
		if _, err := q.Enqueue(context.Background(), m); err == nil {
			t.Fatalf("Enqueue(%+v) accepted", m)
		}
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "no relay") {
		t.Fatalf("Open without relay: %v", err)
	}
}

// TestSpool: messages another process puts into the spool (Spool) are
// picked up by the running queue's rescan and sent once each, also while
// the queue's own Enqueue publishes messages concurrently.
func TestSpool(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0")
	dir := t.TempDir()
	q, err := Open(dir, Options{Relay: r.addr, Hostname: "tern.test", RetryBase: 50 * time.Millisecond,
		Rescan: 20 * time.Millisecond, Timeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			var enqueue func(context.Context, Message) (string, error) = q.Enqueue
			if i%2 == 0 {
				enqueue = sp.Enqueue
			}
			if _, err := enqueue(context.Background(), Message{To: []string{fmt.Sprintf("rcpt%d@example.net", i)}, Data: []byte(reply)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitFor(t, "all sent", func() bool { return len(spoolFiles(t, dir, "queue")) == 0 && len(r.messages()) >= 20 })
	seen := map[string]int{}
	for _, m := range r.messages() {
		seen[m.to[0]]++
	}
	for i := range 20 {
		if n := seen[fmt.Sprintf("rcpt%d@example.net", i)]; n != 1 {
			t.Errorf("rcpt%d: sent %d times", i, n)
		}
	}
	if f := spoolFiles(t, dir, "failed"); len(f) != 0 {
		t.Fatalf("failed/: %v", f)
	}
}
