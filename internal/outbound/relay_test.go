package outbound

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/smtptest"
)

func openQueueWith(t *testing.T, dir string, opts Options) *Queue {
	t.Helper()
	opts.Hostname = "tern.test"
	if opts.RetryBase == 0 {
		opts.RetryBase = 50 * time.Millisecond
	}
	opts.Timeout = 10 * time.Second
	level := slog.LevelError
	if os.Getenv("TERN_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	return q
}

func enqueue(t *testing.T, q *Queue, to string) string {
	t.Helper()
	id, err := q.Enqueue(context.Background(), Message{To: []string{to}, Data: []byte(reply)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitRetry waits until message id has a retry state with at least n
// attempts and returns it.
func waitRetry(t *testing.T, dir, id string, n int) retryState {
	t.Helper()
	var st retryState
	waitFor(t, "a retry state", func() bool {
		data, err := os.ReadFile(filepath.Join(dir, "queue", id+retrySuffix))
		return err == nil && json.Unmarshal(data, &st) == nil && st.Attempts >= n
	})
	return st
}

// The relay offers STARTTLS: the message goes over TLS, the relay's
// certificate checked against the CA file.
func TestStartTLS(t *testing.T) {
	sink := smtptest.StartWith(t, smtptest.Options{TLS: true})
	q := openQueueWith(t, t.TempDir(), Options{Relay: sink.Addr, TLS: TLSOptions{CAFile: sink.CAFile}})
	enqueue(t, q, "bob@example.net")
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	got := sink.Messages()
	if len(got) != 1 || !got[0].TLS || got[0].Data != reply {
		t.Fatalf("sink got %+v", got)
	}
}

// A certificate that does not verify (the system roots do not know the
// test CA) is a temporary failure: the message waits, with the reason in
// its retry state, and goes out once the operator configures the CA (or,
// for tests, insecure).
func TestStartTLSUnverified(t *testing.T) {
	sink := smtptest.StartWith(t, smtptest.Options{TLS: true})
	dir := t.TempDir()
	q := openQueueWith(t, dir, Options{Relay: sink.Addr})
	id := enqueue(t, q, "bob@example.net")
	st := waitRetry(t, dir, id, 1)
	if !strings.Contains(st.LastError, "certificate") {
		t.Fatalf("last error %q", st.LastError)
	}
	q.Close(context.Background())
	if len(sink.Messages()) != 0 || len(spoolFiles(t, dir, "failed")) != 0 {
		t.Fatalf("sent %d, failed %v", len(sink.Messages()), spoolFiles(t, dir, "failed"))
	}
	q = openQueueWith(t, dir, Options{Relay: sink.Addr, TLS: TLSOptions{Insecure: true}, RetryBase: time.Millisecond})
	waitFor(t, "delivery", func() bool { return q.Len() == 0 && len(sink.Messages()) == 1 })
	// The message file and its retry state are removed right after the
	// queue forgets the message.
	waitFor(t, "an empty queue/", func() bool {
		files, err := os.ReadDir(filepath.Join(dir, "queue"))
		return err == nil && len(files) == 0
	})
}

// sieve.smtp_require_tls: a relay without STARTTLS gets nothing; the
// message waits.
func TestRequireTLS(t *testing.T) {
	sink := smtptest.Start(t)
	dir := t.TempDir()
	q := openQueueWith(t, dir, Options{Relay: sink.Addr, TLS: TLSOptions{Require: true}})
	id := enqueue(t, q, "bob@example.net")
	st := waitRetry(t, dir, id, 2)
	if !strings.Contains(st.LastError, "does not offer STARTTLS") || len(sink.Messages()) != 0 {
		t.Fatalf("last error %q, sink got %d", st.LastError, len(sink.Messages()))
	}
}

// AUTH PLAIN after STARTTLS; wrong credentials are a temporary failure
// (the message is not bounced to failed/).
func TestAuth(t *testing.T) {
	sink := smtptest.StartWith(t, smtptest.Options{TLS: true, Username: "tern", Password: "s3cret"})
	dir := t.TempDir()
	q := openQueueWith(t, dir, Options{Relay: sink.Addr, TLS: TLSOptions{CAFile: sink.CAFile}, Auth: Auth{"tern", "wrong"}})
	id := enqueue(t, q, "bob@example.net")
	st := waitRetry(t, dir, id, 2)
	if sink.AuthFailures() < 2 || !strings.Contains(st.LastError, "AUTH") || len(spoolFiles(t, dir, "failed")) != 0 {
		t.Fatalf("auth failures %d, last error %q, failed/ %v", sink.AuthFailures(), st.LastError, spoolFiles(t, dir, "failed"))
	}
	q.Close(context.Background())
	q = openQueueWith(t, dir, Options{Relay: sink.Addr, TLS: TLSOptions{CAFile: sink.CAFile}, Auth: Auth{"tern", "s3cret"}, RetryBase: time.Millisecond})
	q.mu.Lock()
	q.pending[id].next = time.Now() // due now rather than after the saved backoff
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	if got := sink.Messages(); len(got) != 1 || got[0].User != "tern" || !got[0].TLS {
		t.Fatalf("sink got %+v", got)
	}
}

// Without TLS, credentials go only to a relay on loopback.
func TestAuthPlainOnlyOnLoopback(t *testing.T) {
	sink := smtptest.StartWith(t, smtptest.Options{Username: "tern", Password: "pw"})
	q := openQueueWith(t, t.TempDir(), Options{Relay: sink.Addr, Auth: Auth{"tern", "pw"}})
	enqueue(t, q, "bob@example.net")
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	if got := sink.Messages(); len(got) != 1 || got[0].User != "tern" || got[0].TLS {
		t.Fatalf("sink got %+v", got)
	}
	for addr, want := range map[string]bool{"127.0.0.1:25": true, "[::1]:25": true, "localhost:25": true,
		"192.0.2.1:25": false, "relay.example.net:587": false, "nonsense": false} {
		if onLoopback(addr) != want {
			t.Errorf("onLoopback(%q) = %v", addr, !want)
		}
	}
}

// The attempt count and the next attempt's time survive a restart: the
// reopened queue continues the backoff instead of sending at once.
func TestRetryStateSurvivesRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	dir := t.TempDir()
	q := openQueueWith(t, dir, Options{Relay: addr, RetryBase: time.Hour, RetryMax: 2 * time.Hour})
	id := enqueue(t, q, "bob@example.net")
	st := waitRetry(t, dir, id, 1)
	q.Close(context.Background())
	if st.Attempts != 1 || time.Until(st.Next) < 50*time.Minute || !strings.Contains(st.LastError, "connect") {
		t.Fatalf("saved state %+v", st)
	}
	q = openQueueWith(t, dir, Options{Relay: addr, RetryBase: time.Hour, RetryMax: 2 * time.Hour})
	q.mu.Lock()
	e := q.pending[id]
	q.mu.Unlock()
	if e == nil || e.attempts != 1 || !e.next.Equal(st.Next) {
		t.Fatalf("after restart: %+v, saved %+v", e, st)
	}
	if due, wait := q.due(); due != "" || wait < 50*time.Minute {
		t.Fatalf("due %q in %v after a restart", due, wait)
	}
}
