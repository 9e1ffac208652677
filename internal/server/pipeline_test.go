package server_test

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// writeCounter counts the writes the server makes to its connections.
type writeCounter struct {
	net.Listener
	writes *atomic.Int64
}

func (l writeCounter) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{nc, l.writes}, nil
}

type countedConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func pipelineServer(t *testing.T) (*testServer, *atomic.Int64) {
	writes := &atomic.Int64{}
	ts := newTestServer(t, serverOpts{insecureAuth: true, wrapListener: func(l net.Listener) net.Listener {
		return writeCounter{l, writes}
	}})
	ts.addUser("alice", "pw")
	return ts, writes
}

// TestPipelinedResponsesOneWrite: commands a client pipelines are
// answered in one write, not one write per command.
func TestPipelinedResponsesOneWrite(t *testing.T) {
	ts, writes := pipelineServer(t)
	c := ts.dial()
	c.ok("LOGIN alice pw")
	c.ok("SELECT INBOX")
	before := writes.Load()
	c.write("p1 NOOP\r\np2 UID FETCH 1:* (FLAGS)\r\np3 NOOP\r\np4 STATUS INBOX (MESSAGES)\r\n")
	for _, tag := range []string{"p1", "p2", "p3", "p4"} {
		c.tagOK(tag)
	}
	if n := writes.Load() - before; n != 1 {
		t.Fatalf("4 pipelined commands answered in %d writes; want 1", n)
	}
}

// TestPipelinedWaitsFlush: a response held back for the next pipelined
// command still goes out when that command waits for the client (a
// literal's continuation, IDLE) or when only part of it has arrived.
func TestPipelinedWaitsFlush(t *testing.T) {
	ts, _ := pipelineServer(t)
	c := ts.dial()
	c.ok("LOGIN alice pw")
	c.ok("SELECT INBOX")

	c.write("a1 NOOP\r\na2 APPEND INBOX {5}\r\n")
	c.tagOK("a1")
	if line := c.readLine(); !strings.HasPrefix(line, "+ ") {
		t.Fatalf("continuation: %q", line)
	}
	c.write("Hi!\r\n\r\n")
	c.tagOK("a2")

	c.write("b1 NOOP\r\nb2 IDLE\r\n")
	c.tagOK("b1")
	if line := c.readLine(); line != "+ idling" {
		t.Fatalf("IDLE: %q", line)
	}
	c.write("DONE\r\n")
	c.tagOK("b2")

	c.write("c1 NOOP\r\nc2 NO")
	c.tagOK("c1")
	c.write("OP\r\n")
	c.tagOK("c2")
}

// tagOK reads up to tag's tagged line and fails unless it is OK.
func (c *client) tagOK(tag string) {
	c.t.Helper()
	if _, tagged := c.readUntil(tag); !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("%s: %s", tag, tagged)
	}
}
