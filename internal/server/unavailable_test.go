package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
)

// TestStorageUnavailable: while the PostgreSQL server is down, a command
// that needs it gets a tagged NO [UNAVAILABLE] (RFC 5530), the session
// goes on (NOOP, which needs no database, is OK), and once the server is
// back the same commands work again. Before, the database's connection
// errors were taken for the client's: the server dropped the connection
// without a word.
func TestStorageUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and stops a PostgreSQL server of its own")
	}
	c, err := pgtest.StartWith("-c synchronous_commit=on") // the APPEND survives the stop
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { c.Stop() })
	url, err := c.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ts, cl := aliceSelected(t, url, postgres.Options{})
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"FETCH 1 (FLAGS)", `STORE 1 +FLAGS (\Seen)`, "STATUS Drafts (MESSAGES)", "FETCH 1 BODY.PEEK[]", "FETCH 1 BODY[]", "LIST \"\" *"} {
		if _, tagged := cl.do(cmd); !strings.HasPrefix(tagged, "NO [UNAVAILABLE]") {
			t.Errorf("%s with the database down: %q, want NO [UNAVAILABLE]", cmd, tagged)
		}
	}
	cl.ok("NOOP")
	other := ts.dial()
	if _, tagged := other.do("LOGIN alice pw"); !strings.HasPrefix(tagged, "NO [UNAVAILABLE]") {
		t.Errorf("LOGIN with the database down: %q, want NO [UNAVAILABLE]", tagged)
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	// A connection the pool kept from before the stop may fail once more.
	for i := 0; ; i++ {
		_, tagged := cl.do(`STORE 1 +FLAGS (\Seen)`)
		if strings.HasPrefix(tagged, "OK") {
			break
		}
		if i == 50 || !strings.HasPrefix(tagged, "NO [UNAVAILABLE]") {
			t.Fatalf("STORE after the database came back: %q", tagged)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if u := cl.ok("FETCH 1 (FLAGS)"); len(u) != 1 || !strings.Contains(u[0], `\Seen`) {
		t.Errorf("FETCH after the database came back: %q", u)
	}
}

// TestBlobStoreUnavailable: while the S3 blob store cannot be reached, a
// command that needs a body from it (FETCH BODY[], APPEND) gets a tagged
// NO [UNAVAILABLE], the session goes on with what the database answers
// alone, and once the store is back the same commands work again. Before,
// the S3 client's connection errors were taken for the IMAP client's:
// the server dropped the connection without a word.
func TestBlobStoreUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an S3 server")
	}
	cfg := s3test.NewBucket(t)
	proxy := s3test.StartProxy(t, strings.TrimPrefix(cfg.Endpoint, "http://"))
	cfg.Endpoint = proxy.Endpoint()
	blobs, err := blob.OpenS3(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open blob store: %v", err)
	}
	_, cl := aliceSelected(t, pgtest.NewDatabase(t), postgres.Options{Blobs: blobs})
	proxy.Cut()
	if _, tagged := cl.do("FETCH 1 BODY[]"); !strings.HasPrefix(tagged, "NO [UNAVAILABLE]") {
		t.Errorf("FETCH BODY[] with the blob store down: %q, want NO [UNAVAILABLE]", tagged)
	}
	cl.write("A1 APPEND INBOX {20}\r\n")
	if l := cl.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: expected continuation, got %q", l)
	}
	cl.write("Subject: y\r\n\r\nnew\r\n\r\n")
	if _, tagged := cl.readUntil("A1"); !strings.HasPrefix(tagged, "NO [UNAVAILABLE]") {
		t.Errorf("APPEND with the blob store down: %q, want NO [UNAVAILABLE]", tagged)
	}
	if u := cl.ok("FETCH 1 (FLAGS)"); len(u) != 1 {
		t.Errorf("FETCH FLAGS with the blob store down: %q", u)
	}
	proxy.Mend()
	if u := cl.ok("FETCH 1 BODY[]"); len(u) != 1 || !strings.Contains(u[0], "hello") {
		t.Errorf("FETCH BODY[] after the blob store came back: %q", u)
	}
	cl.appendMsg("INBOX", "", "Subject: y\r\n\r\nnew\r\n")
	if u := cl.ok("FETCH 1:* (UID)"); len(u) != 2 {
		t.Errorf("after the second APPEND: %q", u)
	}
}

// aliceSelected starts a server on the postgres database url (opts with
// the server's notifier), and returns it with a session of alice that
// appended one message ("hello") and selected INBOX.
func aliceSelected(t *testing.T, url string, opts postgres.Options) (*testServer, *client) {
	t.Helper()
	ts := newTestServer(t, serverOpts{insecureAuth: true, openStore: func(t *testing.T, n store.Notifier) store.Store {
		opts.Notifier = n
		st, err := postgres.Open(context.Background(), url, opts)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return st
	}})
	ts.addUser("alice", "pw")
	cl := ts.dial()
	cl.ok("LOGIN alice pw")
	cl.appendMsg("INBOX", "", "Subject: x\r\n\r\nhello\r\n")
	cl.ok("SELECT INBOX")
	return ts, cl
}
