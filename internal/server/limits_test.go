package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// TestInputBounds sends input past every parser bound and checks the
// answer and that the connection is (or is not) usable afterwards.
func TestInputBounds(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true, mutate: func(c *server.Config) {
		c.MaxLineLength = 8192
		c.MaxLiteralSize = 1000
	}})
	ts.addUser("alice", "secret")
	login := func(t *testing.T) *client {
		c := newClient(t, dialRaw(t, ts.addr))
		c.ok("LOGIN alice secret")
		c.ok("SELECT INBOX")
		return c
	}

	t.Run("line length", func(t *testing.T) {
		c := login(t)
		c.write("a SELECT " + strings.Repeat("x", 9000) + "\r\n")
		l := c.readLine()
		if !strings.Contains(l, "BAD") {
			t.Fatalf("got %q", l)
		}
		if l := c.readLine(); !strings.HasPrefix(l, "* BYE") {
			t.Fatalf("got %q, want BYE", l)
		}
		waitClosed(t, c.conn, 2*time.Second)
	})
	t.Run("quoted string length", func(t *testing.T) {
		c := login(t)
		c.write(`a SEARCH SUBJECT "` + strings.Repeat("x", 9000) + "\"\r\n")
		if l := c.readLine(); !strings.Contains(l, "BAD") {
			t.Fatalf("got %q", l)
		}
		if l := c.readLine(); !strings.HasPrefix(l, "* BYE") {
			t.Fatalf("got %q, want BYE", l)
		}
		waitClosed(t, c.conn, 2*time.Second)
	})
	t.Run("overlong line after a syntax error", func(t *testing.T) {
		// The rest of a bad line is discarded without buffering it.
		c := login(t)
		c.write("a NOOP " + strings.Repeat("x", 100000) + "\r\n")
		if l := c.readLine(); !strings.HasPrefix(l, "a BAD") {
			t.Fatalf("got %q", l)
		}
		c.ok("NOOP")
	})
	t.Run("synchronizing literal too big", func(t *testing.T) {
		c := login(t)
		c.write("a APPEND INBOX {1001}\r\n")
		if l := c.readLine(); l != "a NO [TOOBIG] literal too big" {
			t.Fatalf("got %q", l)
		}
		c.ok("NOOP") // no data was sent: still in sync
		c.appendMsg("INBOX", "", strings.Repeat("y", 998))
	})
	t.Run("non-synchronizing literal too big", func(t *testing.T) {
		c := login(t)
		c.write("a APPEND INBOX {100000+}\r\n" + strings.Repeat("z", 2000))
		if l := c.readLine(); !strings.HasPrefix(l, "a NO [TOOBIG]") {
			t.Fatalf("got %q", l)
		}
		if l := c.readLine(); !strings.HasPrefix(l, "* BYE") {
			t.Fatalf("got %q, want BYE", l)
		}
		waitClosed(t, c.conn, 2*time.Second)
	})
	t.Run("huge literal size", func(t *testing.T) {
		c := login(t)
		c.write("a APPEND INBOX {99999999999999999999999999}\r\n")
		if l := c.readLine(); !strings.HasPrefix(l, "a NO [TOOBIG]") && !strings.HasPrefix(l, "a BAD") {
			t.Fatalf("got %q", l)
		}
	})
	t.Run("total literal size of one command", func(t *testing.T) {
		c := login(t)
		// Each literal is allowed alone; together they exceed the bound.
		c.write("a SEARCH SUBJECT {400}\r\n")
		if l := c.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("got %q", l)
		}
		c.write(strings.Repeat("a", 400) + " BODY {400}\r\n")
		if l := c.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("got %q", l)
		}
		c.write(strings.Repeat("b", 400) + " TEXT {400}\r\n")
		if l := c.readLine(); !strings.HasPrefix(l, "a NO [TOOBIG]") {
			t.Fatalf("third literal: got %q", l)
		}
	})
	t.Run("parenthesis nesting", func(t *testing.T) {
		c := login(t)
		c.expect("SEARCH "+strings.Repeat("(", 100)+"ALL"+strings.Repeat(")", 100), "BAD")
		c.ok("SEARCH " + strings.Repeat("(", 10) + "ALL" + strings.Repeat(")", 10))
	})
	t.Run("NOT/OR nesting", func(t *testing.T) {
		c := login(t)
		c.expect("SEARCH "+strings.Repeat("NOT ", 1500)+"ALL", "BAD")
		c.expect("SEARCH "+strings.Repeat("OR ALL ", 1100)+"ALL", "BAD")
	})
	t.Run("sequence ranges", func(t *testing.T) {
		c := login(t)
		var b strings.Builder
		for i := 0; i < 1500; i++ {
			fmt.Fprintf(&b, "%d,", 2*i+1)
		}
		b.WriteString("1")
		// 1501 ranges fit in the 8 KiB line; the default cap is 10000, so
		// use UID FETCH with a set past the cap on a bigger line below.
		c.ok("UID FETCH " + b.String() + " (FLAGS)")
	})
	t.Run("search keys count", func(t *testing.T) {
		c := login(t)
		start := time.Now()
		// As many keys as fit in one line: bounded by the line length.
		c.ok("SEARCH " + strings.TrimSpace(strings.Repeat("SEEN ", 1600)))
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("SEARCH with 1600 keys took %v", d)
		}
	})
	t.Run("mailbox name length and depth", func(t *testing.T) {
		c := login(t)
		c.expect("CREATE "+strings.Repeat("n", 1001), "NO")
		c.expect("CREATE "+strings.Repeat("d/", 60)+"d", "NO")
		c.ok("CREATE " + strings.Repeat("d/", 40) + "d")
		c.expect("RENAME d "+strings.Repeat("e/", 45)+"e", "NO") // children would exceed the depth
	})
}

// The default range cap (10000) with the default line length.
func TestSequenceRangeCap(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("LOGIN alice secret")
	c.ok("SELECT INBOX")
	var b strings.Builder
	for i := 0; i < 10001; i++ {
		fmt.Fprintf(&b, "%d,", 2*i+1)
	}
	b.WriteString("1")
	c.expect("UID FETCH "+b.String()+" (FLAGS)", "BAD")
	c.ok("NOOP")
}

// Connections per IP and in total.
func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*server.Config)
	}{
		{"per address before login", func(c *server.Config) { c.MaxPreAuthConnsPerIP = 3 }},
		{"total", func(c *server.Config) { c.MaxConns = 3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, serverOpts{mutate: tc.mutate})
			var cs []*client
			for i := 0; i < 3; i++ {
				cs = append(cs, ts.dial())
			}
			nc := dialRaw(t, ts.addr)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 200)
			n, _ := nc.Read(buf)
			if got := string(buf[:n]); got != "* BYE [UNAVAILABLE] Too many connections\r\n" {
				t.Fatalf("4th connection: %q", got)
			}
			waitClosed(t, nc, 2*time.Second)
			cs[0].ok("LOGOUT")
			waitClosed(t, cs[0].conn, 2*time.Second)
			// The slot is free again (the server notices asynchronously).
			deadline := time.Now().Add(5 * time.Second)
			for {
				nc := dialRaw(t, ts.addr)
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _ := nc.Read(buf)
				nc.Close()
				if strings.HasPrefix(string(buf[:n]), "* OK") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("slot not freed: %q", buf[:n])
				}
				time.Sleep(20 * time.Millisecond)
			}
			cs[1].ok("NOOP")
		})
	}
}

// Authenticated sessions are logged out after IdleTimeout without a
// command (the default is the RFC's 30 minutes; shortened here).
func TestIdleAutologout(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true, mutate: func(c *server.Config) {
		c.IdleTimeout = 700 * time.Millisecond
	}})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("LOGIN alice secret")
	start := time.Now()
	if l := c.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("got %q", l)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 3*time.Second {
		t.Fatalf("autologout after %v", d)
	}
	waitClosed(t, c.conn, 2*time.Second)
	if server.DefaultIdleTimeout < 30*time.Minute {
		t.Fatalf("default idle timeout %v below the RFC's 30 minutes", server.DefaultIdleTimeout)
	}
}
