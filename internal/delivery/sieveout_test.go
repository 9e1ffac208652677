package delivery

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/outbound"
	"github.com/tern-imap/tern/internal/smtptest"
)

// outEnv is a testEnv whose deliverer runs the scripts the store keeps
// and sends through a real outbound queue to an SMTP sink.
type outEnv struct {
	*testEnv
	sink *smtptest.Sink
	q    *outbound.Queue
}

func newOutEnv(t *testing.T, users ...string) *outEnv {
	t.Helper()
	sink := smtptest.Start(t)
	q, err := outbound.Open(t.TempDir(), outbound.Options{Relay: sink.Addr, Hostname: "tern.test",
		RetryBase: 50 * time.Millisecond, Timeout: 10 * time.Second, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	e := newEnv(t, Options{}, users...)
	e.d = New(e.st, Options{Scripts: StoreScripts(e.st), Sender: q, Logger: quietLog(), Domains: []string{"example.org"}})
	e.startLMTP(LMTPConfig{})
	return &outEnv{testEnv: e, sink: sink, q: q}
}

// activate stores src as user's active script.
func (e *outEnv) activate(user, src string) {
	e.t.Helper()
	a := e.account(user)
	ctx := context.Background()
	if err := a.PutSieveScript(ctx, "main", []byte(src)); err != nil {
		e.t.Fatal(err)
	}
	if err := a.SetActiveSieveScript(ctx, "main"); err != nil {
		e.t.Fatal(err)
	}
}

// deliver sends msg from sender to rcpt over LMTP and wants 250.
func (e *outEnv) deliver(sender, rcpt, msg string) {
	e.t.Helper()
	c := dialLMTP(e.t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<%s>", sender)
	c.cmd(250, "RCPT TO:<%s>", rcpt)
	if r := c.data(msg, 1); !strings.HasPrefix(r[0], "250") {
		e.t.Fatalf("delivery from %q: %q", sender, r)
	}
}

// sent waits until the queue has sent everything queued (deliveries
// queue before their LMTP reply) and returns what the sink got.
func (e *outEnv) sent() []smtptest.Message {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for e.q.Len() > 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("outbound queue not drained: %d left", e.q.Len())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e.sink.Messages()
}

func mail(from, to, extra, id string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: plans\r\nMessage-ID: " + id + "\r\n" + extra + "\r\nSee you.\r\n"
}

// TestLMTPSieveVacation: one reply per sender per period, kept across
// deliveries (and deliverers) in the store; none to lists, bulk,
// automatic, null or robot senders, nor when the user is not addressed;
// the reply is RFC 5230 §5's.
func TestLMTPSieveVacation(t *testing.T) {
	e := newOutEnv(t, "alice")
	e.activate("alice", `require "vacation";
vacation :days 2 :subject "Away until Monday" "I am away.";`)

	e.deliver("friend@example.net", "alice@example.org",
		mail("Friend <friend@example.net>", "alice@example.org", "References: <r0@example.net>\r\n", "<v1@example.net>"))
	e.deliver("friend@example.net", "alice@example.org",
		mail("Friend <friend@example.net>", "Alice <alice@example.org>", "", "<v2@example.net>"))
	got := e.sent()
	if len(got) != 1 {
		t.Fatalf("after two messages from one sender: %d replies, want 1: %+v", len(got), got)
	}
	r := got[0]
	if r.From != "" || !slices.Equal(r.To, []string{"friend@example.net"}) {
		t.Fatalf("reply envelope MAIL FROM <%s> RCPT %v, want <> and friend", r.From, r.To)
	}
	for _, want := range []string{
		"\r\nAuto-Submitted: auto-replied", "\r\nIn-Reply-To: <v1@example.net>\r\n",
		"\r\nReferences: <r0@example.net> <v1@example.net>\r\n", "\r\nSubject: Away until Monday\r\n",
		"From: <alice@example.org>\r\n", "\r\nTo: <friend@example.net>\r\n", "I am away.",
	} {
		if !strings.Contains("\r\n"+r.Data, want) {
			t.Errorf("reply lacks %q:\n%s", want, r.Data)
		}
	}

	// No replies to these (RFC 5230 §4.5 and §5).
	for _, m := range []struct{ sender, msg string }{
		{"list-bounces@lists.example.com", mail("list@lists.example.com", "alice@example.org", "List-Id: <l.lists.example.com>\r\n", "<l1@x>")},
		{"news@example.com", mail("news@example.com", "alice@example.org", "Precedence: bulk\r\n", "<b1@x>")},
		{"robot@example.com", mail("robot@example.com", "alice@example.org", "Auto-Submitted: auto-generated\r\n", "<a1@x>")},
		{"", mail("MAILER-DAEMON@example.com", "alice@example.org", "", "<n1@x>")},
		{"no-reply@example.com", mail("no-reply@example.com", "alice@example.org", "", "<nr1@x>")},
		{"owner-list@example.com", mail("owner-list@example.com", "alice@example.org", "", "<o1@x>")},
		{"stranger@example.com", mail("stranger@example.com", "someone@example.org", "", "<s1@x>")},
	} {
		e.deliver(m.sender, "alice@example.org", m.msg)
	}
	if got := e.sent(); len(got) != 1 {
		t.Fatalf("replies to list/bulk/automatic senders: %+v", got[1:])
	}

	// Another sender gets their own reply; Cc counts as addressed.
	e.deliver("other@example.net", "alice@example.org",
		mail("other@example.net", "x@example.com\r\nCc: alice@example.org", "", "<o2@example.net>"))
	got = e.sent()
	if len(got) != 2 || !slices.Equal(got[1].To, []string{"other@example.net"}) {
		t.Fatalf("second sender: %+v", got)
	}

	// The state is in the store: a new deliverer does not reply again.
	e.d = New(e.st, Options{Scripts: StoreScripts(e.st), Sender: e.q, Logger: quietLog()})
	e.startLMTP(LMTPConfig{})
	e.deliver("friend@example.net", "alice@example.org", mail("friend@example.net", "alice@example.org", "", "<v3@example.net>"))
	if got := e.sent(); len(got) != 2 {
		t.Fatalf("reply again after a restart: %+v", got[2:])
	}
	if n := e.count("alice", "INBOX"); n != 11 {
		t.Fatalf("INBOX: %d messages, want 11 (vacation keeps every message)", n)
	}
}

// TestLMTPSieveRedirect: the message goes to the address with the
// original envelope sender and a loop header, and is not kept; a message
// that already carries the user's loop header is not redirected again
// but kept.
func TestLMTPSieveRedirect(t *testing.T) {
	e := newOutEnv(t, "alice")
	e.activate("alice", `redirect "alice@elsewhere.example";`)

	e.deliver("friend@example.net", "alice@example.org", testMsg)
	got := e.sent()
	if len(got) != 1 {
		t.Fatalf("redirects sent: %d, want 1", len(got))
	}
	r := got[0]
	if r.From != "friend@example.net" || !slices.Equal(r.To, []string{"alice@elsewhere.example"}) {
		t.Fatalf("redirect envelope MAIL FROM <%s> RCPT %v", r.From, r.To)
	}
	if !strings.HasPrefix(r.Data, "X-Tern-Loop: alice\r\n") || strings.Contains(r.Data, "Return-Path:") ||
		!strings.Contains(r.Data, "\r\nDelivered-To: alice@example.org\r\n") ||
		!strings.HasSuffix(r.Data, "\r\nSubject: hello\r\nMessage-ID: <1@example.net>\r\n\r\nHello Alice.\r\n.leading dot\r\n..two dots\r\nend\r\n") {
		t.Fatalf("redirected message:\n%q", r.Data)
	}
	if n := e.count("alice", "INBOX"); n != 0 {
		t.Fatalf("INBOX after redirect: %d messages, want 0", n)
	}

	// The redirected copy comes back: it is kept, not sent again.
	e.deliver("friend@example.net", "alice@example.org", r.Data)
	if got := e.sent(); len(got) != 1 {
		t.Fatalf("looping message redirected again: %+v", got[1:])
	}
	if n := e.count("alice", "INBOX"); n != 1 {
		t.Fatalf("INBOX after the loop: %d messages, want 1 (implicit keep)", n)
	}
}

// TestLMTPSieveDuplicate: the duplicate test sees a Message-ID delivered
// before, across deliveries; a delivery that failed (over quota) records
// nothing, so its retry is not a duplicate (RFC 7352 §3).
func TestLMTPSieveDuplicate(t *testing.T) {
	e := newOutEnv(t, "alice")
	e.activate("alice", `require ["duplicate", "fileinto", "mailbox"];
if duplicate { fileinto :create "Dups"; }`)
	msg := func(id string) string { return mail("friend@example.net", "alice@example.org", "", id) }
	e.deliver("friend@example.net", "alice@example.org", msg("<d1@example.net>"))
	e.deliver("friend@example.net", "alice@example.org", msg("<d1@example.net>"))
	e.deliver("friend@example.net", "alice@example.org", msg("<d2@example.net>"))
	if in, dups := e.count("alice", "INBOX"), e.count("alice", "Dups"); in != 2 || dups != 1 {
		t.Fatalf("INBOX %d, Dups %d; want 2 and 1", in, dups)
	}

	ctx := context.Background()
	a := e.account("alice")
	if err := a.SetQuota(ctx, 0, 3); err != nil {
		t.Fatal(err)
	}
	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<friend@example.net>")
	c.cmd(250, "RCPT TO:<alice@example.org>")
	if r := c.data(msg("<d3@example.net>"), 1); !strings.HasPrefix(r[0], "552") {
		t.Fatalf("delivery over quota: %q", r)
	}
	if err := a.SetQuota(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	e.deliver("friend@example.net", "alice@example.org", msg("<d3@example.net>"))
	if in, dups := e.count("alice", "INBOX"), e.count("alice", "Dups"); in != 3 || dups != 1 {
		t.Fatalf("after the retry: INBOX %d, Dups %d; want 3 and 1", in, dups)
	}
}

// TestLMTPSieveVacationConcurrent: messages from one sender arriving at
// once over several LMTP connections get one reply.
func TestLMTPSieveVacationConcurrent(t *testing.T) {
	e := newOutEnv(t, "alice")
	e.activate("alice", `require "vacation"; vacation "Away.";`)
	const n = 8
	clients := make([]*lmtpClient, n)
	for i := range clients {
		c := dialLMTP(t, "tcp", e.addr)
		c.cmd(250, "MAIL FROM:<friend@example.net>")
		c.cmd(250, "RCPT TO:<alice@example.org>")
		c.cmd(354, "DATA")
		clients[i] = c
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			w := c.c.DotWriter()
			io.WriteString(w, mail("friend@example.net", "alice@example.org", "", fmt.Sprintf("<c%d@example.net>", i)))
			w.Close()
		})
	}
	wg.Wait()
	for _, c := range clients {
		if code, msg := c.reply(); code != 250 {
			t.Fatalf("delivery: %d %s", code, msg)
		}
	}
	if got := e.sent(); len(got) != 1 {
		t.Fatalf("%d replies to one sender, want 1", len(got))
	}
}

// TestLMTPSieveRedirectHeaderState: each action that carries the message
// carries the header as edited when the action was taken (RFC 5293:
// an edit is seen by the tests and actions that follow it; Pigeonhole's
// editheader "alternating" tests check the same): a header
// added before redirect and deleted after is in the redirected copy and
// not in the stored one; a header deleted before redirect and added
// after is the other way round.
func TestLMTPSieveRedirectHeaderState(t *testing.T) {
	e := newOutEnv(t, "alice", "bob")
	e.activate("alice", `require ["editheader", "fileinto", "mailbox"];
addheader "X-Some-Header" "Header content";
redirect "frop@example.net";
deleteheader "X-Some-Header";
fileinto :create "folder1";`)
	e.activate("bob", `require ["editheader", "fileinto", "mailbox"];
deleteheader "Subject";
redirect "friep@example.net";
addheader "Subject" "Friep!";
fileinto :create "folder2";`)
	e.deliver("sender@example.net", "alice@example.org", mail("sender@example.net", "alice@example.org", "", "<h1@example.net>"))
	e.deliver("sender@example.net", "bob@example.org", mail("sender@example.net", "bob@example.org", "", "<h2@example.net>"))
	got := e.sent()
	if len(got) != 2 {
		t.Fatalf("sent %d messages", len(got))
	}
	byRcpt := map[string]string{}
	for _, m := range got {
		byRcpt[m.To[0]] = m.Data
	}
	if d := byRcpt["frop@example.net"]; !strings.Contains(d, "X-Some-Header: Header content\r\n") {
		t.Errorf("alice's redirect lacks the header added before it:\n%s", d)
	}
	if b := e.bodies("alice", "folder1"); len(b) != 1 || strings.Contains(b[0], "X-Some-Header") {
		t.Errorf("alice's stored copy: %q", b)
	}
	if d := byRcpt["friep@example.net"]; strings.Contains(d, "Subject:") {
		t.Errorf("bob's redirect has the Subject deleted before it:\n%s", d)
	}
	if b := e.bodies("bob", "folder2"); len(b) != 1 || !strings.Contains(b[0], "Subject: Friep!\r\n") {
		t.Errorf("bob's stored copy: %q", b)
	}
}
