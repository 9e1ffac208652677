package server_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// waitClosed reads (and discards) from nc until the server closes it, and
// fails if that does not happen within d.
func waitClosed(t *testing.T, nc net.Conn, d time.Duration) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(d))
	n, err := io.Copy(io.Discard, nc)
	t.Logf("drained %d bytes: %v", n, err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server did not close the connection within %v", d)
	}
}

// A client that never reads its FETCH output must not pin the connection
// (and the memory and mailbox it holds) forever: writes that make no
// progress for WriteTimeout end the connection.
func TestSlowReaderDropped(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true, mutate: func(c *server.Config) {
		c.WriteTimeout = 500 * time.Millisecond
	}})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("LOGIN alice secret")
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 1024) // 1 MiB
	c.appendMsg("INBOX", "", big)
	c.ok("SELECT INBOX")
	// Ask for far more than the socket buffers hold (up to 32 MiB receive
	// and 4 MiB send on Linux by default), and read nothing.
	var cmds strings.Builder
	for i := 0; i < 96; i++ {
		fmt.Fprintf(&cmds, "F%d FETCH 1 BODY.PEEK[]\r\n", i)
	}
	c.write(cmds.String())
	time.Sleep(2 * time.Second) // the server is blocked writing; the deadline passes
	// Now drain: the server must have given up and closed the connection.
	waitClosed(t, c.conn, 5*time.Second)
}

// The time before login is bounded in total, not per command: a client
// cannot stay unauthenticated forever by sending NOOP now and then.
func TestPreAuthTimeoutIsTotal(t *testing.T) {
	ts := newTestServer(t, serverOpts{mutate: func(c *server.Config) {
		c.PreAuthTimeout = 600 * time.Millisecond
	}})
	c := ts.dial()
	start := time.Now()
	for i := 0; time.Since(start) < 3*time.Second; i++ {
		time.Sleep(200 * time.Millisecond)
		if _, err := fmt.Fprintf(c.conn, "n%d NOOP\r\n", i); err != nil {
			break // closed: good
		}
		c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := c.br.ReadString('\n')
		if err != nil {
			break
		}
		if strings.HasPrefix(line, "* BYE") {
			waitClosed(t, c.conn, 2*time.Second)
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Fatalf("closed after %v, want about 600ms", d)
			}
			return
		}
	}
	t.Fatalf("unauthenticated connection still open after %v of NOOPs", time.Since(start))
}

// A slowloris client trickling one command byte by byte is cut off at the
// pre-auth deadline.
func TestSlowlorisPreAuth(t *testing.T) {
	ts := newTestServer(t, serverOpts{mutate: func(c *server.Config) {
		c.PreAuthTimeout = 500 * time.Millisecond
	}})
	c := ts.dial()
	start := time.Now()
	cmd := "a LOGIN " + strings.Repeat("x", 100)
	for i := 0; i < len(cmd); i++ {
		if _, err := c.conn.Write([]byte{cmd[i]}); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
		if time.Since(start) > 2*time.Second {
			break
		}
	}
	waitClosed(t, c.conn, 2*time.Second)
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("slowloris connection lived %v", d)
	}
}

// Unauthenticated clients get a bounded number of commands.
func TestPreAuthCommandLimit(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	c := ts.dial()
	var cmds strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&cmds, "c%d CAPABILITY\r\n", i)
	}
	go io.WriteString(c.conn, cmds.String())
	n := 0
	for {
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d tagged responses: %v (no BYE)", n, err)
		}
		if strings.HasPrefix(line, "* BYE") {
			break
		}
		if strings.HasPrefix(line, "c") {
			n++
		}
	}
	if n >= 200 || n < 10 {
		t.Fatalf("%d pre-auth commands answered before BYE", n)
	}
	waitClosed(t, c.conn, 2*time.Second)
}

// A client sending nothing but garbage is disconnected after a few BADs.
func TestConsecutiveBadCommands(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("LOGIN alice secret")
	var cmds strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&cmds, "g%d FROBNICATE\r\n\x01\x02 garbage ((\r\n", i)
	}
	go io.WriteString(c.conn, cmds.String())
	bads := 0
	for {
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d BADs: %v (no BYE)", bads, err)
		}
		if strings.HasPrefix(line, "* BYE") {
			break
		}
		if strings.Contains(line, " BAD ") {
			bads++
		}
	}
	if bads > 50 {
		t.Fatalf("%d BAD responses before BYE", bads)
	}
	waitClosed(t, c.conn, 2*time.Second)

	// Good commands in between reset the count.
	c = ts.dial()
	c.ok("LOGIN alice secret")
	for i := 0; i < 60; i++ {
		c.expect("FROBNICATE", "BAD")
		c.ok("NOOP")
	}
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}
