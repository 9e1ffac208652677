package delivery

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testEnv is a real SQLite store with a notify hub, a Deliverer and an
// LMTP server on a loopback port.
type testEnv struct {
	t    *testing.T
	dir  string
	st   store.Store
	hub  *notify.Hub
	d    *Deliverer
	addr string // LMTP
}

func newEnv(t *testing.T, opts Options, users ...string) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir(), hub: notify.New()}
	st, err := sqlite.Open(context.Background(), e.dir, sqlite.Options{Notifier: e.hub, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	t.Cleanup(func() { st.Close() })
	for _, u := range users {
		e.addUser(u)
	}
	opts.Logger = quietLog()
	e.d = New(st, opts)
	return e
}

func (e *testEnv) addUser(name string) {
	e.t.Helper()
	hash, err := auth.HashPassword("pw-" + name)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.CreateUser(context.Background(), name, hash); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) startLMTP(cfg LMTPConfig) {
	e.t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	srv := NewLMTPServer(e.d, cfg)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	e.t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			e.t.Errorf("Serve: %v", err)
		}
	})
}

func (e *testEnv) account(user string) store.Account {
	e.t.Helper()
	a, err := e.st.Account(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { a.Close() })
	return a
}

// bodies returns the raw messages in a user's mailbox, by UID.
func (e *testEnv) bodies(user, mailbox string) []string {
	e.t.Helper()
	ctx := context.Background()
	a := e.account(user)
	mi, err := a.Mailbox(ctx, mailbox)
	if err != nil {
		e.t.Fatal(err)
	}
	_, uids, err := a.Snapshot(ctx, mi.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, u := range uids {
		b, err := a.OpenBody(ctx, mi.ID, u)
		if err != nil {
			e.t.Fatal(err)
		}
		data, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
		b.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, string(data))
	}
	return out
}

// lmtpClient speaks raw LMTP.
type lmtpClient struct {
	t *testing.T
	c *textproto.Conn
}

func dialLMTP(t *testing.T, network, addr string) *lmtpClient {
	t.Helper()
	nc, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := &lmtpClient{t: t, c: textproto.NewConn(nc)}
	t.Cleanup(func() { c.c.Close() })
	c.expect(220)
	c.cmd(250, "LHLO client.example")
	return c
}

// reply reads one (possibly multi-line) reply.
func (c *lmtpClient) reply() (int, string) {
	c.t.Helper()
	code, msg, err := c.c.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

func (c *lmtpClient) expect(code int) string {
	c.t.Helper()
	got, msg := c.reply()
	if got != code {
		c.t.Fatalf("reply %d %s, want %d", got, msg, code)
	}
	return msg
}

func (c *lmtpClient) cmd(code int, format string, args ...any) string {
	c.t.Helper()
	if err := c.c.PrintfLine(format, args...); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(code)
}

// data sends DATA and the message (dot-stuffed) and returns one reply
// per accepted recipient.
func (c *lmtpClient) data(msg string, n int) []string {
	c.t.Helper()
	c.cmd(354, "DATA")
	w := c.c.DotWriter()
	if _, err := io.WriteString(w, msg); err != nil {
		c.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for range n {
		code, text := c.reply()
		out = append(out, fmt.Sprintf("%d %s", code, text))
	}
	return out
}

const testMsg = "From: Sender <sender@example.net>\r\nTo: alice@example.org\r\nSubject: hello\r\n" +
	"Message-ID: <1@example.net>\r\n\r\nHello Alice.\r\n.leading dot\r\n..two dots\r\nend\r\n"

func TestLMTPPerRecipientReplies(t *testing.T) {
	e := newEnv(t, Options{RecipientDelimiter: "+"}, "alice", "bob", "carol", "dave")
	e.startLMTP(LMTPConfig{})
	ctx := context.Background()
	// bob is over quota: 10 bytes.
	if err := e.account("bob").SetQuota(ctx, 10, 0); err != nil {
		t.Fatal(err)
	}
	// carol's storage is broken: her body directory is replaced by a file,
	// so writing a message too large for the database fails (a temporary
	// storage error).
	blobs := filepath.Join(e.dir, "users", "3", "blobs")
	if err := os.RemoveAll(blobs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobs, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}

	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<sender@example.net>")
	c.cmd(250, "RCPT TO:<alice@example.org>")
	if msg := c.cmd(550, "RCPT TO:<nobody@example.org>"); !strings.HasPrefix(msg, "5.1.1") {
		t.Fatalf("unknown user: %q, want 5.1.1", msg)
	}
	c.cmd(250, "RCPT TO:<bob@example.org>")
	c.cmd(250, "RCPT TO:<carol@example.org>")
	c.cmd(250, "RCPT TO:<dave@example.org>")
	msg := testMsg + strings.Repeat("padding line\r\n", sqlite.DefaultInlineBodyMax/14+1)
	replies := c.data(msg, 4)
	want := []string{"250 ", "552 5.2.2", "451 4.3.0", "250 "}
	for i, w := range want {
		if !strings.HasPrefix(replies[i], w) {
			t.Fatalf("reply %d = %q, want %q...; all: %q", i, replies[i], w, replies)
		}
	}
	// alice and dave got their copies despite bob's and carol's failures,
	// byte for byte after the trace headers.
	for _, u := range []string{"alice", "dave"} {
		got := e.bodies(u, "INBOX")
		wantMsg := "Return-Path: <sender@example.net>\r\nDelivered-To: " + u + "@example.org\r\n" + msg
		if len(got) != 1 || got[0] != wantMsg {
			t.Fatalf("%s's INBOX = %q, want [%q]", u, got, wantMsg)
		}
	}
	if got := e.bodies("bob", "INBOX"); len(got) != 0 {
		t.Fatalf("bob over quota got %d messages", len(got))
	}
	// The connection goes on: a second transaction on the same session.
	c.cmd(250, "MAIL FROM:<>")
	c.cmd(250, "RCPT TO:<alice@example.org>")
	if r := c.data("Subject: bounce\r\n\r\nx\r\n", 1); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("second transaction: %q", r)
	}
	got := e.bodies("alice", "INBOX")
	if len(got) != 2 || !strings.HasPrefix(got[1], "Return-Path: <>\r\nDelivered-To: alice@example.org\r\nSubject: bounce") {
		t.Fatalf("alice's INBOX after bounce: %q", got)
	}
	c.cmd(221, "QUIT")
}

func TestLMTPQuotaTempFail(t *testing.T) {
	e := newEnv(t, Options{QuotaTempFail: true}, "alice")
	e.startLMTP(LMTPConfig{})
	if err := e.account("alice").SetQuota(context.Background(), 0, 1); err != nil {
		t.Fatal(err)
	}
	c := dialLMTP(t, "tcp", e.addr)
	for i, want := range []string{"250 ", "452 4.2.2"} {
		c.cmd(250, "MAIL FROM:<s@example.net>")
		c.cmd(250, "RCPT TO:<alice@localhost>")
		if r := c.data(testMsg, 1); !strings.HasPrefix(r[0], want) {
			t.Fatalf("delivery %d: %q, want %q", i, r[0], want)
		}
	}
}

func TestLMTPDetailDomainsAndDuplicates(t *testing.T) {
	e := newEnv(t, Options{RecipientDelimiter: "+", Domains: []string{"example.org"}}, "alice", "bob@example.org")
	e.startLMTP(LMTPConfig{})
	if err := e.account("alice").CreateMailbox(context.Background(), "lists", ""); err != nil {
		t.Fatal(err)
	}
	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<s@example.net>")
	c.cmd(250, "RCPT TO:<alice+lists@example.org>")  // folder exists
	c.cmd(250, "RCPT TO:<alice+nosuch@EXAMPLE.ORG>") // no such folder: INBOX
	c.cmd(250, "RCPT TO:<Alice@example.org>")        // case-insensitive user
	c.cmd(250, "RCPT TO:<alice@example.org>")        // given twice:
	c.cmd(250, "RCPT TO:<alice@example.org>")        // one copy, two replies
	c.cmd(250, "RCPT TO:<bob@example.org>")          // user named by the full address
	c.cmd(550, "RCPT TO:<alice@elsewhere.example>")  // domain not accepted
	c.cmd(501, "RCPT TO:<@example.org>")             // rejected by the address parser
	replies := c.data(testMsg, 6)
	for i, r := range replies {
		if !strings.HasPrefix(r, "250 ") {
			t.Fatalf("reply %d: %q", i, r)
		}
	}
	lists := e.bodies("alice", "lists")
	if len(lists) != 1 || !strings.Contains(lists[0], "Delivered-To: alice+lists@example.org\r\n") {
		t.Fatalf("lists: %q", lists)
	}
	if n := len(e.bodies("alice", "INBOX")); n != 3 {
		t.Fatalf("alice's INBOX has %d messages, want 3 (+nosuch, Alice, alice once)", n)
	}
	if n := len(e.bodies("bob@example.org", "INBOX")); n != 1 {
		t.Fatalf("bob@example.org has %d messages", n)
	}
}

func TestLMTPUnixSocketAndSizeLimit(t *testing.T) {
	e := newEnv(t, Options{}, "alice")
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	ln, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewLMTPServer(e.d, LMTPConfig{MaxMessageBytes: 1000})
	go srv.Serve(ln)
	defer srv.Close()
	c := dialLMTP(t, "unix", sock)
	c.cmd(250, "MAIL FROM:<s@example.net>")
	c.cmd(250, "RCPT TO:<alice@localhost>")
	if r := c.data(testMsg, 1); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("small message: %q", r)
	}
	c.cmd(250, "MAIL FROM:<s@example.net>")
	c.cmd(250, "RCPT TO:<alice@localhost>")
	if r := c.data(testMsg+strings.Repeat(strings.Repeat("x", 70)+"\r\n", 30), 1); !strings.HasPrefix(r[0], "552 ") {
		t.Fatalf("big message: %q, want 552", r)
	}
	if n := len(e.bodies("alice", "INBOX")); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
	// A second Listen on the live socket fails rather than stealing it.
	if _, err := Listen(sock); err == nil {
		t.Fatal("Listen on a socket in use succeeded")
	}
}

// TestLMTPWakesIdle: an IMAP session in IDLE on INBOX sees a message
// delivered over LMTP at once, through the same store and hub.
func TestLMTPWakesIdle(t *testing.T) {
	e := newEnv(t, Options{}, "alice")
	e.startLMTP(LMTPConfig{})
	authn, err := auth.New(e.st, auth.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{InsecureAuth: true, Auth: authn, Notify: e.hub, Logger: quietLog()}, e.st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, false)
	defer srv.Shutdown(context.Background())

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	readUntil := func(prefix string) {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", prefix, err)
			}
			if strings.HasPrefix(line, prefix) {
				return
			}
		}
	}
	readUntil("* OK")
	fmt.Fprintf(nc, "a LOGIN alice pw-alice\r\n")
	readUntil("a OK")
	fmt.Fprintf(nc, "b SELECT INBOX\r\n")
	readUntil("b OK")
	fmt.Fprintf(nc, "c IDLE\r\n")
	readUntil("+ ")

	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<s@example.net>")
	c.cmd(250, "RCPT TO:<alice@example.org>")
	if r := c.data(testMsg, 1); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("delivery: %q", r)
	}
	readUntil("* 1 EXISTS")
	fmt.Fprintf(nc, "DONE\r\n")
	readUntil("c OK")
}

// Posting into shared folders (the "p" right, RFC 4314 §2.1, as Cyrus's
// postuser): "+Folder@domain" reaches the shared folder only while its
// ACL gives anyone "p"; otherwise, or for a missing or \Noselect folder,
// the answer is "no such user". The shared account itself is no
// recipient.
func TestLMTPPostToSharedFolder(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{RecipientDelimiter: "+", Domains: []string{"example.org"}}, "alice")
	if err := e.st.CreateUser(ctx, store.SharedOwner, ""); err != nil {
		t.Fatal(err)
	}
	sh := e.account(store.SharedOwner)
	for _, f := range []string{"Announce", "Closed", "Team/News"} {
		if err := sh.CreateMailbox(ctx, f, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range [][2]string{{"Announce", "p"}, {"Closed", "lr"}, {"Team/News", "lrp"}} {
		if _, err := sh.SetACL(ctx, g[0], store.Anyone, store.FlagsReplace, g[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sh.SetACL(ctx, "Closed", "alice", store.FlagsReplace, "lrp"); err != nil {
		t.Fatal(err)
	}
	e.startLMTP(LMTPConfig{})
	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<s@example.net>")
	c.cmd(250, "RCPT TO:<+Announce@example.org>")
	c.cmd(250, "RCPT TO:<+Team/News@example.org>")
	c.cmd(550, "RCPT TO:<+Closed@example.org>")  // "p" for alice, not for anyone
	c.cmd(550, "RCPT TO:<+Missing@example.org>") // no such folder
	c.cmd(550, "RCPT TO:<+Team@example.org>")    // \Noselect parent
	c.cmd(550, "RCPT TO:<#shared@example.org>")  // the account itself
	c.cmd(550, "RCPT TO:<#shared+Announce@example.org>")
	replies := c.data(testMsg, 2)
	for i, r := range replies {
		if !strings.HasPrefix(r, "250 ") {
			t.Fatalf("reply %d: %q", i, r)
		}
	}
	if b := e.bodies(store.SharedOwner, "Announce"); len(b) != 1 || !strings.Contains(b[0], "Delivered-To: +Announce@example.org\r\n") {
		t.Fatalf("Announce: %q", b)
	}
	if n := len(e.bodies(store.SharedOwner, "Team/News")); n != 1 {
		t.Fatalf("Team/News has %d messages", n)
	}
	for _, f := range []string{"Closed", "INBOX"} {
		if n := len(e.bodies(store.SharedOwner, f)); n != 0 {
			t.Fatalf("%s has %d messages", f, n)
		}
	}

	// Revoked between RCPT and DATA: refused at DATA, nothing stored.
	c.cmd(250, "MAIL FROM:<s@example.net>")
	c.cmd(250, "RCPT TO:<+Announce@example.org>")
	if _, err := sh.SetACL(ctx, "Announce", store.Anyone, store.FlagsReplace, "lr"); err != nil {
		t.Fatal(err)
	}
	if r := c.data(testMsg, 1); !strings.HasPrefix(r[0], "550 5.1.1") {
		t.Fatalf("after revoke: %q", r)
	}
	if n := len(e.bodies(store.SharedOwner, "Announce")); n != 1 {
		t.Fatalf("Announce has %d messages after the revoke", n)
	}
}

// A post user configured: "bb+Folder" posts, "+Folder" is nobody.
func TestLMTPPostUser(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{RecipientDelimiter: "+", PostUser: "bb"}, "alice")
	if err := e.st.CreateUser(ctx, store.SharedOwner, ""); err != nil {
		t.Fatal(err)
	}
	sh := e.account(store.SharedOwner)
	if err := sh.CreateMailbox(ctx, "Board", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sh.SetACL(ctx, "Board", store.Anyone, store.FlagsReplace, "p"); err != nil {
		t.Fatal(err)
	}
	e.startLMTP(LMTPConfig{})
	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<s@example.net>")
	c.cmd(250, "RCPT TO:<BB+Board@example.org>")
	c.cmd(550, "RCPT TO:<+Board@example.org>")
	if r := c.data(testMsg, 1); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("DATA: %q", r)
	}
	if n := len(e.bodies(store.SharedOwner, "Board")); n != 1 {
		t.Fatalf("Board has %d messages", n)
	}
}
