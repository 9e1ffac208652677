package server_test

import (
	"crypto/tls"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/tern-imap/tern/internal/proxied"
	"github.com/tern-imap/tern/internal/server"
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

// A balancer's health check (a PROXY LOCAL or UNKNOWN header, then
// nothing, or commands without a login) ends its session at debug level:
// at info, every check of every balancer would log a line. A session of
// the balancer's own that logs in, and a client's session through the
// balancer, still log their ends at info, the client's under its address.
func TestBalancerCheckLoggedAtDebug(t *testing.T) {
	nets, err := proxied.ParseNetworks([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	ts := newTestServer(t, serverOpts{
		insecureAuth: true,
		wrapListener: func(ln net.Listener) net.Listener {
			return proxied.Wrap(ln, nets, slog.New(slog.DiscardHandler))
		},
		mutate: func(c *server.Config) {
			c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		},
	})
	ts.addUser("alice", "secret")
	local := proxyproto.HeaderProxyFromAddrs(2, nil, nil)
	local.Command = proxyproto.LOCAL
	localHdr, err := local.Format()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // the level of each session's end, by its remote address
	for _, s := range []struct {
		header   []byte
		commands []string
		remote   string // "": the connection's own
		level    string
	}{
		{localHdr, nil, "", "DEBUG"},
		{[]byte("PROXY UNKNOWN\r\n"), []string{"CAPABILITY"}, "", "DEBUG"},
		{localHdr, []string{"LOGIN alice secret"}, "", "INFO"},
		{[]byte("PROXY TCP4 192.0.2.1 192.0.2.2 40000 143\r\n"), nil, "192.0.2.1:40000", "INFO"},
	} {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(s.header); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, nc) // the greeting
		for _, cmd := range s.commands {
			c.ok(cmd)
		}
		nc.Close()
		remote := s.remote
		if remote == "" {
			remote = nc.LocalAddr().String()
		}
		want[remote] = s.level
	}
	got := map[string]string{}
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d session ends logged, want %d:\n%s", len(got), len(want), logs.String())
		}
		for _, r := range logs.records(t) {
			if r["msg"] == "session ended" {
				got[r["remote"].(string)] = r["level"].(string)
			}
		}
	}
	for remote, level := range want {
		if got[remote] != level {
			t.Errorf("session from %s ended at %q, want %s", remote, got[remote], level)
		}
	}
}
