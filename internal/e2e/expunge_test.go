package e2e_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestStaleViewFetch: two clients on one mailbox (a desktop client and
// a phone). One expunges a message; the other, which has not yet been
// told, fetches it. RFC 9051 section 7.5.2 lets the server answer that
// FETCH with the data, or with no data for the vanished message (OK or
// NO), but the session must stay usable and learn of the expunge after.
func TestStaleViewFetch(t *testing.T) { forEachStore(t, testStaleViewFetch) }

func testStaleViewFetch(t *testing.T, store []string) {
	srv := startServer(t, map[string]string{"ann": "ann-secret"}, store...)
	b := srv.client(t, "ann", "ann-secret")
	body := testMessage("Bob <bob@example.org>", "vanishing", 1)
	uid := appendMsg(t, b, "INBOX", body)

	// Session A: raw IMAP, so the exchange can be shown exactly.
	conn, err := tls.Dial("tcp", srv.imapsAddr, &tls.Config{RootCAs: srv.roots(t), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	var transcript strings.Builder
	readUntil := func(tag string) (string, error) {
		var got strings.Builder
		for {
			line, err := r.ReadString('\n')
			got.WriteString(line)
			transcript.WriteString("S: " + line)
			if err != nil {
				return got.String(), err
			}
			if strings.HasPrefix(line, tag+" ") {
				return got.String(), nil
			}
		}
	}
	send := func(tag, cmd string) (string, error) {
		fmt.Fprintf(conn, "%s %s\r\n", tag, cmd)
		transcript.WriteString("C: " + tag + " " + cmd + "\r\n")
		return readUntil(tag)
	}
	if _, err := readUntil("*"); err != nil {
		t.Fatal(err)
	}
	if out, err := send("a1", "LOGIN ann ann-secret"); err != nil || !strings.Contains(out, "a1 OK") {
		t.Fatalf("login: %v\n%s", err, transcript.String())
	}
	if out, err := send("a2", "SELECT INBOX"); err != nil || !strings.Contains(out, "* 1 EXISTS") {
		t.Fatalf("select: %v\n%s", err, transcript.String())
	}

	// Session B expunges the message.
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Expunge().Close(); err != nil {
		t.Fatal(err)
	}

	// Session A still has message 1 in its view and fetches it.
	out, err := send("a3", "FETCH 1 (UID BODY.PEEK[])")
	if err != nil {
		t.Fatalf("FETCH of a message expunged by another session: connection lost (%v)\n%s", err, transcript.String())
	}
	if !strings.Contains(out, "a3 OK") && !strings.Contains(out, "a3 NO") {
		t.Errorf("FETCH ended %q, want OK or NO\n%s", out, transcript.String())
	}
	if strings.Contains(out, "BODY[]") && !strings.Contains(out, string(body)) {
		t.Errorf("FETCH returned BODY[] but not the message bytes\n%s", transcript.String())
	}
	// The session goes on and learns of the expunge.
	out, err = send("a4", "NOOP")
	if err != nil || !strings.Contains(out, "* 1 EXPUNGE") || !strings.Contains(out, "a4 OK") {
		t.Errorf("NOOP after the FETCH: %v, want * 1 EXPUNGE and OK\n%s", err, transcript.String())
	}
}

// TestConcurrentExpungeFetch: one session fetches whole messages in a
// loop while another expunges them one by one. Every FETCH must end
// with a tagged OK or NO, the connection must stay up, and every body
// returned must be the stored bytes.
//
// Found by the neomutt test: the body used to be opened after "* n FETCH ("
// was written, so an expunge committed in between broke the response and
// the connection. Bodies are now opened first and a vanished message is
// left out.
func TestConcurrentExpungeFetch(t *testing.T) { forEachStore(t, testConcurrentExpungeFetch) }

func testConcurrentExpungeFetch(t *testing.T, store []string) {
	srv := startServer(t, map[string]string{"ann": "ann-secret"}, store...)
	b := srv.client(t, "ann", "ann-secret")
	const n = 150
	bodies := map[string]bool{}
	for i := range n {
		m := testMessage("Bob <bob@example.org>", fmt.Sprintf("race %d", i), i)
		bodies[string(m)] = true
		appendMsg(t, b, "INBOX", m)
	}
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	a := srv.client(t, "ann", "ann-secret")
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
				done <- err
				return
			}
			if err := b.Expunge().Close(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	section := &imap.FetchItemBodySection{Peek: true}
	for fetches := 0; ; fetches++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("expunging client: %v", err)
			}
			t.Logf("%d FETCHes raced %d expunges", fetches, n)
			return
		default:
		}
		if err := a.Noop().Wait(); err != nil {
			t.Fatalf("NOOP after %d FETCHes: %v (server log:\n%s)", fetches, err, srv.log.String())
		}
		if a.Mailbox().NumMessages == 0 {
			continue
		}
		bufs, err := a.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, BodySection: []*imap.FetchItemBodySection{section},
		}).Collect()
		if err != nil && !strings.Contains(err.Error(), "NO") {
			t.Fatalf("FETCH 1:* BODY.PEEK[] while another session expunges: %v (after %d FETCHes; server log:\n%s)", err, fetches, srv.log.String())
		}
		for _, m := range bufs {
			if got := m.FindBodySection(section); got != nil && !bodies[string(got)] {
				t.Fatalf("UID %d: FETCH returned bytes that were never stored: %q", m.UID, got)
			}
		}
	}
}
