package server_test

import (
	"crypto/tls"
	"log/slog"
	"net"
	"testing"

	"github.com/tern-imap/tern/internal/proxied"
)

// headerConn writes a PROXY header in front of the first thing written
// to it, so the header and a TLS ClientHello leave in one write, as a
// balancer may send them.
type headerConn struct {
	net.Conn
	header []byte
}

func (c *headerConn) Write(p []byte) (int, error) {
	if h := c.header; h != nil {
		c.header = nil
		if _, err := c.Conn.Write(append(h, p...)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// IMAPS through a load balancer's PROXY header: the header arrives with
// the ClientHello, the session waits for its client on the socket itself
// once idle (parked in awaitReadable, which needs the TCP connection
// under the proxied one and nothing buffered above it), and IDLE's
// updates still reach it.
func TestIMAPSThroughProxyHeader(t *testing.T) {
	nets, err := proxied.ParseNetworks([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, serverOpts{insecureAuth: true, wrapTLSListener: func(ln net.Listener) net.Listener {
		return proxied.Wrap(ln, nets, slog.New(slog.DiscardHandler))
	}})
	ts.addUser("alice", "secret")
	raw, err := net.Dial("tcp", ts.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	hc := &headerConn{Conn: raw, header: []byte("PROXY TCP4 192.0.2.1 192.0.2.2 40000 993\r\n")}
	tc := tls.Client(hc, &tls.Config{RootCAs: ts.roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS through the PROXY header: %v", err)
	}
	a := newClient(t, tc)
	a.ok("LOGIN alice secret")
	a.ok("SELECT INBOX")
	startIdle(t, a, "I1")
	waitParked(t, 1)
	if n := parkedSessions("server.(*conn).awaitReadable("); n != 1 {
		t.Errorf("%d parked sessions wait on their sockets, want the proxied one", n)
	}
	b := ts.dial()
	b.ok("LOGIN alice secret")
	b.appendMsg("INBOX", "", simpleMsg)
	if l := a.readLine(); l != "* 1 EXISTS" {
		t.Fatalf("IDLE update to the proxied session: %q", l)
	}
}
