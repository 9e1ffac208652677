package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
	"github.com/tern-imap/tern/internal/store/sqlite"
	"github.com/tern-imap/tern/internal/tlsutil"
)

// testServer is a real tern server on a loopback port over a real SQLite
// store in a temporary directory.
type testServer struct {
	t       *testing.T
	addr    string // plain IMAP (STARTTLS available)
	tlsAddr string // implicit TLS
	store   store.Store
	index   *index.Indexes // the mailbox index in front of store (its Notifier)
	srv     *server.Server
	roots   *x509.CertPool
	authn   *auth.Authenticator
}

type serverOpts struct {
	insecureAuth bool
	mutate       func(*server.Config)
	dataDir      string       // default: a new temporary directory
	authPolicy   auth.Policy  // login throttling; zero: auth.DefaultPolicy
	authLog      *slog.Logger // the authenticator's log; nil: discarded
	// wrapStore, if set, wraps the store the server and the authenticator
	// use (the mailbox index over SQLite), as tern serve does for metrics.
	wrapStore func(store.Store) store.Store
	// noTextIndexer: no background full-text indexer (tests that drain
	// the queue themselves, with sqlite.Store.IndexText).
	noTextIndexer bool
	// wrapListener, if set, wraps the plaintext listener (a test that
	// watches the server's side of its connections).
	wrapListener func(net.Listener) net.Listener
	// wrapTLSListener, if set, wraps the IMAPS listener.
	wrapTLSListener func(net.Listener) net.Listener
	// openStore, if set, opens the backend instead of openBackend (a
	// test that needs a particular store, e.g. postgres with a tracer).
	openStore func(t *testing.T, n store.Notifier) store.Store
}

func newTestServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	hub := notify.New()
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	ix := index.New(hub, index.Options{})
	var backend store.Store
	if o.openStore != nil {
		backend = o.openStore(t, ix)
	} else {
		backend = openBackend(t, o.dataDir, ix, !o.noTextIndexer)
	}
	st := ix.Wrap(backend)
	if o.wrapStore != nil {
		st = o.wrapStore(st)
	}
	certPEM, keyPEM, err := tlsutil.Generate([]string{"localhost", "127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatalf("generate cert: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("load cert: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	authn, err := auth.New(st, auth.Options{Policy: o.authPolicy, Logger: o.authLog})
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	level := slog.LevelWarn
	if os.Getenv("TERN_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	cfg := server.Config{
		TLS:          func() *tls.Config { return tlsCfg },
		InsecureAuth: o.insecureAuth,
		Auth:         authn,
		Notify:       hub,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	srv := server.New(cfg, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.wrapListener != nil {
		ln = o.wrapListener(ln)
	}
	if o.wrapTLSListener != nil {
		tln = o.wrapTLSListener(tln)
	}
	go srv.Serve(ln, false)
	go srv.Serve(tln, true)
	ts := &testServer{t: t, addr: ln.Addr().String(), tlsAddr: tln.Addr().String(), store: st, index: ix, srv: srv, roots: roots, authn: authn}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		st.Close()
	})
	return ts
}

// openBackend opens the store under test: SQLite in dir, or, with
// TERN_TEST_STORE=postgres, a new database on a private PostgreSQL
// server (internal/pgtest), so the whole protocol suite can be run on
// either backend; TERN_TEST_BLOBS=file puts the postgres store's bodies
// in a file blob store in dir, TERN_TEST_BLOBS=s3 in a bucket of a
// private S3 server (internal/s3test).
func openBackend(t *testing.T, dir string, n store.Notifier, textIndexer bool) store.Store {
	t.Helper()
	ctx := context.Background()
	if os.Getenv("TERN_TEST_STORE") == "postgres" {
		opts := postgres.Options{Notifier: n}
		switch os.Getenv("TERN_TEST_BLOBS") {
		case "file":
			b, err := blob.OpenFile(filepath.Join(dir, "blobs"))
			if err != nil {
				t.Fatalf("open blob store: %v", err)
			}
			opts.Blobs = b
		case "s3":
			b, err := blob.OpenS3(ctx, s3test.NewPrefix(t))
			if err != nil {
				t.Fatalf("open blob store: %v", err)
			}
			opts.Blobs = b
		}
		st, err := postgres.Open(ctx, pgtest.NewDatabase(t), opts)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return st
	}
	st, err := sqlite.Open(ctx, dir, sqlite.Options{Notifier: n, TextIndexer: textIndexer})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

func TestMain(m *testing.M) { os.Exit(s3test.Wrap(func() int { return pgtest.Main(m) })) }

// needSQLite skips a test that looks at the SQLite store's files when the
// suite runs on PostgreSQL.
func needSQLite(t *testing.T) {
	t.Helper()
	if os.Getenv("TERN_TEST_STORE") == "postgres" {
		t.Skip("looks at the sqlite store's files")
	}
}

// addUser creates a user with the default mailboxes.
func (ts *testServer) addUser(name, pass string) {
	ts.t.Helper()
	ctx := context.Background()
	h, err := auth.HashPassword(pass)
	if err != nil {
		ts.t.Fatal(err)
	}
	if err := ts.store.CreateUser(ctx, name, h); err != nil {
		ts.t.Fatalf("create user: %v", err)
	}
	acct, err := ts.store.Account(ctx, name)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer acct.Close()
	for _, mb := range []struct{ name, use string }{{"Drafts", `\Drafts`}, {"Sent", `\Sent`}, {"Trash", `\Trash`}, {"Junk", `\Junk`}, {"Archive", `\Archive`}} {
		if err := acct.CreateMailbox(ctx, mb.name, mb.use); err != nil {
			ts.t.Fatal(err)
		}
	}
	for _, n := range []string{"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"} {
		if err := acct.SetSubscribed(ctx, n, true); err != nil {
			ts.t.Fatal(err)
		}
	}
}

// client is a raw IMAP client: it sends exact bytes and returns exact lines.
type client struct {
	t        *testing.T
	conn     net.Conn
	br       *bufio.Reader
	tag      atomic.Int64
	greeting string
}

func (ts *testServer) dial() *client {
	ts.t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	return newClient(ts.t, nc)
}

func (ts *testServer) dialTLS() *client {
	ts.t.Helper()
	nc, err := tls.Dial("tcp", ts.tlsAddr, &tls.Config{RootCAs: ts.roots, ServerName: "localhost"})
	if err != nil {
		ts.t.Fatal(err)
	}
	return newClient(ts.t, nc)
}

func newClient(t *testing.T, nc net.Conn) *client {
	c := &client{t: t, conn: nc, br: bufio.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	c.greeting = c.readLine()
	if !strings.HasPrefix(c.greeting, "* OK ") {
		t.Fatalf("greeting: %q", c.greeting)
	}
	return c
}

// login dials over TLS and logs in.
func (ts *testServer) login(user, pass string) *client {
	c := ts.dialTLS()
	c.ok("LOGIN " + user + " " + pass)
	return c
}

func (c *client) readLine() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, line)
	}
	if !strings.HasSuffix(line, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", line)
	}
	return strings.TrimSuffix(line, "\r\n")
}

// readResponseLine reads one response line, including any literals it
// carries (their bytes are inlined, with the {n}\r\n marker kept).
func (c *client) readResponseLine() string {
	c.t.Helper()
	line := c.readLine()
	for strings.HasSuffix(line, "}") {
		i := strings.LastIndexByte(line, '{')
		if i < 0 {
			break
		}
		n, err := strconv.Atoi(strings.TrimSuffix(line[i+1:len(line)-1], "+"))
		if err != nil {
			break
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			c.t.Fatalf("read literal: %v", err)
		}
		line += "\r\n" + string(buf) + c.readLine()
	}
	return line
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// do sends "tag cmd" and returns the untagged lines and the tagged line.
func (c *client) do(cmd string) (untagged []string, tagged string) {
	c.t.Helper()
	tag := fmt.Sprintf("T%d", c.tag.Add(1))
	c.write(tag + " " + cmd + "\r\n")
	return c.readUntil(tag)
}

func (c *client) readUntil(tag string) (untagged []string, tagged string) {
	c.t.Helper()
	for {
		line := c.readResponseLine()
		if strings.HasPrefix(line, tag+" ") {
			return untagged, strings.TrimPrefix(line, tag+" ")
		}
		untagged = append(untagged, line)
	}
}

// ok runs cmd and fails unless it completes with OK.
func (c *client) ok(cmd string) []string {
	c.t.Helper()
	u, tagged := c.do(cmd)
	if !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("%s: got %q (untagged %q)", cmd, tagged, u)
	}
	return u
}

// expect runs cmd and checks the tagged response starts with want.
func (c *client) expect(cmd, want string) []string {
	c.t.Helper()
	u, tagged := c.do(cmd)
	if !strings.HasPrefix(tagged, want) {
		c.t.Fatalf("%s: got %q, want prefix %q (untagged %q)", cmd, tagged, want, u)
	}
	return u
}

// appendMsg APPENDs msg to mailbox with a synchronizing literal.
func (c *client) appendMsg(mailbox, flags, msg string) string {
	c.t.Helper()
	tag := fmt.Sprintf("T%d", c.tag.Add(1))
	f := ""
	if flags != "" {
		f = " (" + flags + ")"
	}
	c.write(fmt.Sprintf("%s APPEND %s%s {%d}\r\n", tag, mailbox, f, len(msg)))
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		c.t.Fatalf("APPEND: expected continuation, got %q", l)
	}
	c.write(msg + "\r\n")
	_, tagged := c.readUntil(tag)
	if !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("APPEND: %q", tagged)
	}
	return tagged
}

// hasLine fails unless lines contain want exactly.
func hasLine(t *testing.T, lines []string, want string) {
	t.Helper()
	for _, l := range lines {
		if l == want {
			return
		}
	}
	t.Fatalf("missing %q in:\n%s", want, strings.Join(lines, "\n"))
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// lastTag is the tag of the last command sent by do/ok/expect.
func (c *client) lastTag() string { return fmt.Sprintf("T%d", c.tag.Load()) }
