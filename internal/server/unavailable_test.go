package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
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
	cfg, proxy := s3test.Proxied(t, s3test.NewBucket(t))
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

// TestBlobStoreStallsMidLiteral: when the S3 store stops answering half-way
// through a body whose literal is already being sent, the server cannot
// finish the literal, so it closes the connection; it must not write a
// tagged NO [UNAVAILABLE] inside the literal (the client would take it
// for message text and read the next response as more of the body). Both
// ways a body goes out in a literal: FETCH and URLFETCH.
func TestBlobStoreStallsMidLiteral(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an S3 server")
	}
	cfg, proxy := s3test.Proxied(t, s3test.NewBucket(t))
	writes, err := blob.OpenS3(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open blob store: %v", err)
	}
	// Reads give up after a second, so the stall ends the FETCH soon;
	// writes keep the default, so a loaded machine's slow first PUT into
	// a new bucket does not fail the setup.
	cfg.Timeout, cfg.Attempts = time.Second, 1
	reads, err := blob.OpenS3(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open blob store: %v", err)
	}
	ts, cl := aliceSelected(t, pgtest.NewDatabase(t), postgres.Options{Blobs: splitBlobs{writes, reads}})
	size := 3 << 20
	cl.appendMsg("INBOX", "", randomAttachmentMessage(size))
	url := genURL(t, cl, "imap://alice@localhost/INBOX/;uid=2;urlauth=user+alice")
	for _, cmd := range []string{"FETCH 2 BODY.PEEK[]", `URLFETCH "` + url + `"`} {
		c := ts.dial()
		c.ok("LOGIN alice pw")
		c.ok("EXAMINE INBOX")
		proxy.FreezeAfter(2 << 20) // most of the stored body (3/4 of size: decoded base64), not all
		c.write("T99 " + cmd + "\r\n")
		got := readUntilClosed(t, c, 15*time.Second)
		proxy.Mend()
		head, body, found := bytes.Cut(got, []byte("}\r\n"))
		if !found || !bytes.Contains(head, []byte("{")) {
			t.Fatalf("%s: no literal in %q", cmd, got[:min(len(got), 200)])
		}
		if len(body) >= size {
			t.Errorf("%s: %d bytes after the literal's start of a %d-byte message: not cut", cmd, len(body), size)
		}
		if bytes.Contains(body, []byte("T99 ")) || bytes.Contains(body, []byte("UNAVAILABLE")) {
			t.Errorf("%s: a response inside the cut literal: %q", cmd, body[max(0, len(body)-200):])
		}
	}
	// The store is back: the whole body, on a new connection.
	c := ts.dial()
	c.ok("LOGIN alice pw")
	c.ok("EXAMINE INBOX")
	if u := c.ok("FETCH 2 BODY.PEEK[]"); len(u) != 1 || len(u[0]) < size {
		t.Errorf("FETCH after the store came back: %d bytes", len(strings.Join(u, "")))
	}
}

// splitBlobs opens objects through reads, and does the rest through
// the embedded store.
type splitBlobs struct {
	blob.Store
	reads blob.Store
}

func (s splitBlobs) Open(ctx context.Context, key string) (blob.Object, error) {
	return s.reads.Open(ctx, key)
}

// randomAttachmentMessage is a message of about size bytes whose bulk is a
// base64 attachment of random bytes: no compression makes its stored
// form small.
func randomAttachmentMessage(size int) string {
	raw := make([]byte, size*3/4)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nSubject: random\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b--\r\n")
	return b.String()
}

// readUntilClosed reads what the server sends until it closes the
// connection; the test fails if that takes longer than limit.
func readUntilClosed(t *testing.T, c *client, limit time.Duration) []byte {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(limit))
	got, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatalf("connection not closed within %v: %v (%d bytes read)", limit, err, len(got))
	}
	return got
}
