package server_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// dialFrom connects to addr from a given loopback source address
// (127.0.0.2, ...), as a client at another address would.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// firstLine reads the server's first line on a fresh connection.
func firstLine(t *testing.T, nc net.Conn) string {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, _ := nc.Read(buf)
	return string(buf[:n])
}

// An office behind one NAT address with the default limits: 200 sessions
// of 3 users (shared accounts; Thunderbird alone opens up to 5 per
// account) from one address, all connecting at once before any logs in,
// then all logged in and working at the same time. Before, the 51st
// connection got "* BYE Too many connections" (50 per address, counted
// before and after login).
func TestOfficeBehindOneAddress(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	users := []string{"info", "sales", "support"}
	for _, u := range users {
		ts.addUser(u, "pw-"+u)
	}
	const sessions = 200
	cs := make([]*client, sessions)
	for i := range cs {
		cs[i] = ts.dial() // fails on a BYE instead of the greeting
	}
	for i, c := range cs {
		u := users[i%len(users)]
		c.ok("LOGIN " + u + " pw-" + u)
	}
	for _, c := range cs {
		c.ok("SELECT INBOX")
	}
	for _, c := range cs {
		c.ok("NOOP")
	}
}

// Connections not logged in are limited per address; logged-in ones do
// not count against that limit.
func TestPreAuthLimitPerAddress(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true, mutate: func(c *server.Config) {
		c.MaxPreAuthConnsPerIP = 3
	}})
	ts.addUser("alice", "secret")
	var cs []*client
	for range 3 {
		cs = append(cs, ts.dial())
	}
	nc := dialRaw(t, ts.addr)
	if got := firstLine(t, nc); got != "* BYE [UNAVAILABLE] Too many connections\r\n" {
		t.Fatalf("4th connection before login: %q", got)
	}
	waitClosed(t, nc, 2*time.Second)
	// Another address is not affected.
	if got := firstLine(t, dialFrom(t, "127.0.0.2", ts.addr)); !strings.HasPrefix(got, "* OK") {
		t.Fatalf("other address: %q", got)
	}
	// Logging in frees the pre-login slot at once (no asynchronous end).
	cs[0].ok("LOGIN alice secret")
	cs[1].ok("LOGIN alice secret")
	for range 2 {
		if got := firstLine(t, dialRaw(t, ts.addr)); !strings.HasPrefix(got, "* OK") {
			t.Fatalf("after two logins: %q", got)
		}
	}
	cs[0].ok("NOOP")
}

// New connections per address are rate limited (a token bucket: a burst,
// then a steady rate); other addresses are not affected.
func TestConnectionRatePerAddress(t *testing.T) {
	ts := newTestServer(t, serverOpts{mutate: func(c *server.Config) {
		c.ConnBurstPerIP = 3
		c.ConnRatePerIP = 4 // one token every 250ms
	}})
	for i := range 3 {
		nc := dialRaw(t, ts.addr)
		if got := firstLine(t, nc); !strings.HasPrefix(got, "* OK") {
			t.Fatalf("connection %d of the burst: %q", i, got)
		}
		nc.Close()
	}
	nc := dialRaw(t, ts.addr)
	if got := firstLine(t, nc); got != "* BYE [UNAVAILABLE] Too many new connections; try again later\r\n" {
		t.Fatalf("connection after the burst: %q", got)
	}
	if got := firstLine(t, dialFrom(t, "127.0.0.2", ts.addr)); !strings.HasPrefix(got, "* OK") {
		t.Fatalf("other address: %q", got)
	}
	time.Sleep(300 * time.Millisecond)
	if got := firstLine(t, dialRaw(t, ts.addr)); !strings.HasPrefix(got, "* OK") {
		t.Fatalf("after the rate refilled a token: %q", got)
	}
}

// After login, sessions are limited per user and address (like Dovecot's
// mail_max_userip_connections) and per user in total. The refused LOGIN
// gets NO [LIMIT] and the connection stays usable.
func TestUserConnectionLimits(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true, mutate: func(c *server.Config) {
		c.MaxUserIPConns = 2
		c.MaxUserConns = 3
	}})
	ts.addUser("alice", "secret")
	ts.addUser("bob", "secret")
	login := func(src string) (*client, string) {
		t.Helper()
		c := newClient(t, dialFrom(t, src, ts.addr))
		_, tagged := c.do("LOGIN alice secret")
		return c, tagged
	}
	a1, _ := login("127.0.0.1")
	a2, _ := login("127.0.0.1")
	c, tagged := login("127.0.0.1")
	if tagged != "NO [LIMIT] Too many connections for this user from your address" {
		t.Fatalf("3rd session of alice from one address: %q", tagged)
	}
	c.ok("LOGIN bob secret") // the connection is still usable; bob is not limited by alice
	c.ok("SELECT INBOX")
	a3, tagged := login("127.0.0.2")
	if !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("alice from a second address: %q", tagged)
	}
	_, tagged = login("127.0.0.3")
	if tagged != "NO [LIMIT] Too many connections for this user" {
		t.Fatalf("4th session of alice: %q", tagged)
	}
	a1.ok("LOGOUT")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, tagged = login("127.0.0.3")
		if strings.HasPrefix(tagged, "OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after LOGOUT: %q", tagged)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a2.ok("NOOP")
	a3.ok("NOOP")
}
