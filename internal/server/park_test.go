package server_test

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// parkedSessions counts the sessions whose goroutine is a parked one
// waiting for input (its stack holds the read under conn.resume and not
// yet the session loop) and has frame in its stack ("" for any).
func parkedSessions(frame string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("server.(*conn).resume(")) && !bytes.Contains(g, []byte("server.(*conn).run(")) &&
			bytes.Contains(g, []byte(frame)) {
			n++
		}
	}
	return n
}

// startIdle sends tag IDLE and reads the continuation.
func startIdle(t *testing.T, c *client, tag string) {
	t.Helper()
	c.write(tag + " IDLE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("%s IDLE: %q", tag, l)
	}
}

// waitParked waits until at least n sessions are parked.
func waitParked(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for parkedSessions("") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions parked after 5 s, want %d", parkedSessions(""), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A session idle between commands or in IDLE parks (a new goroutine waits
// for its input) and goes on unchanged: commands, IDLE's updates and DONE,
// over plaintext and TLS.
func TestParkedSessionGoesOn(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, serverOpts{insecureAuth: true})
			ts.addUser("alice", "secret")
			a := ts.dial()
			if useTLS {
				a = ts.dialTLS()
			}
			a.ok("LOGIN alice secret")
			a.ok("SELECT INBOX")
			b := ts.login("alice", "secret")
			waitParked(t, 2)

			b.appendMsg("INBOX", "", simpleMsg)
			hasLine(t, a.ok("NOOP"), "* 1 EXISTS")
			waitParked(t, 2)

			startIdle(t, a, "I1")
			waitParked(t, 2)
			b.appendMsg("INBOX", "", simpleMsg)
			if l := a.readLine(); l != "* 2 EXISTS" {
				t.Fatalf("idle update from a parked session: %q", l)
			}
			if l := a.readLine(); l != "* 2 RECENT" {
				t.Fatalf("idle update: %q", l)
			}
			// Woken, it parks again, and DONE still ends IDLE.
			waitParked(t, 2)
			a.write("DONE\r\n")
			if l := a.readLine(); l != "I1 OK IDLE completed" {
				t.Fatalf("done: %q", l)
			}
			hasLine(t, a.ok("FETCH 2 (FLAGS)"), `* 2 FETCH (FLAGS (\Recent))`)
		})
	}
}

// A parked session still ends at its idle timer, and at shutdown with a BYE.
func TestParkedSessionEnds(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true, mutate: func(c *server.Config) { c.IdleTimeout = 1500 * time.Millisecond }})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	a.ok("SELECT INBOX")
	startIdle(t, a, "I1")
	b := ts.login("alice", "secret")
	e := ts.dialTLS()
	e.ok("LOGIN alice secret")
	waitParked(t, 3)
	// All three are TLS (ts.login uses STARTTLS, e IMAPS): they wait on
	// their sockets, not under crypto/tls's reader.
	if n := parkedSessions("server.(*conn).awaitReadable("); n != 3 {
		t.Errorf("%d parked sessions wait in awaitReadable, want 3", n)
	}
	if n := parkedSessions("crypto/tls.(*Conn).Read("); n != 0 {
		t.Errorf("%d parked sessions wait in crypto/tls's Read, want 0", n)
	}
	for _, cl := range []*client{a, b, e} {
		if l := cl.readLine(); l != "* BYE Autologout; idle for too long" {
			t.Fatalf("idle timer of a parked session: %q", l)
		}
	}

	c := ts.login("alice", "secret")
	c.ok("SELECT INBOX")
	startIdle(t, c, "I2")
	d := ts.login("alice", "secret")
	f := ts.dialTLS()
	f.ok("LOGIN alice secret")
	f.ok("SELECT INBOX")
	startIdle(t, f, "I3")
	waitParked(t, 3)
	go ts.srv.Shutdown(t.Context())
	for _, cl := range []*client{c, d, f} {
		if l := cl.readLine(); l != "* BYE Server shutting down" {
			t.Fatalf("shutdown of a parked session: %q", l)
		}
	}
}

// A command that arrives in pieces, the first within parkAfter of the
// previous response, is read to its end under the idle timer: its line and
// its literal may take longer than parkAfter.
func TestSlowCommandAfterCommand(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	a.ok("SELECT INBOX")
	a.write("A1 NO")
	time.Sleep(500 * time.Millisecond)
	a.write("OP\r\n")
	if _, tagged := a.readUntil("A1"); tagged != "OK NOOP completed" {
		t.Fatalf("a command line split over 500 ms: %q", tagged)
	}
	msg := crlf(simpleMsg)
	a.write("A2 APPEND INBOX {" + strconv.Itoa(len(msg)) + "}\r\n")
	if l := a.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("append: %q", l)
	}
	time.Sleep(500 * time.Millisecond)
	a.write(msg + "\r\n")
	if _, tagged := a.readUntil("A2"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("a literal sent 500 ms after its continuation: %q", tagged)
	}
}

// A parked IDLE with NOTIFY gets other mailboxes' events and the selected
// one's, parking again in between; after NOTIFY NONE the session still
// waits for its idle timer, not for parkAfter.
func TestParkedIdleWithNotify(t *testing.T) {
	a, b := notifyPair(t)
	startIdle(t, a, "I1")
	waitParked(t, 2)
	b.appendMsg("Other", "", simpleMsg)
	a.expectLines("* STATUS Other (MESSAGES 1 UIDNEXT 2)")
	waitParked(t, 2)
	b.appendMsg("INBOX", "", simpleMsg)
	a.expectLines("* 1 EXISTS", "* 1 RECENT", `* 1 FETCH (UID 1 FLAGS (\Recent))`)
	waitParked(t, 2)
	a.write("DONE\r\n")
	a.expectLines("I1 OK IDLE completed")
	a.ok("NOTIFY NONE")
	waitParked(t, 2)
	time.Sleep(3 * 200 * time.Millisecond)
	a.quiet()
}
