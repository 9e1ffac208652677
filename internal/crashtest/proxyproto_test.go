package crashtest

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// greetingFrom connects to addr from the loopback address src and
// returns the connection and the server's first line ("" when the
// server closed the connection without one).
func greetingFrom(t *testing.T, src, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	line, _ := br.ReadString('\n')
	return nc, br, line
}

// TestProxyProtocolHAProxy: tern behind HAProxy sending PROXY version 2
// headers (send-proxy-v2, health checks with check-send-proxy) sees each
// client's own address, so the per-address limits count clients, not
// the balancer: with one unauthenticated connection allowed per address,
// a second client address still gets in while the first address's
// second connection is refused. Without the header every client would
// be HAProxy's 127.0.0.1, and the third connection refused too. A client
// outside the trusted network that sends a PROXY line itself is not
// believed (the line is a bad command), and a connection from the
// trusted network without a header is closed.
func TestProxyProtocolHAProxy(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "tern.toml")
	conf := "[proxy_protocol]\ntrusted_networks = [\"127.0.0.1\"]\n[limits]\nmax_preauth_conns_per_ip = 1\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startServer(t, t.TempDir(), "--config", cfg)
	defer n.stop()
	lb := startHAProxyOpts(t, "send-proxy-v2 check-send-proxy", []string{n.addr}, []string{n.addr})

	if _, _, g := greetingFrom(t, "127.0.0.2", lb.imap); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("first client from 127.0.0.2: %q, want a greeting", g)
	}
	if _, _, g := greetingFrom(t, "127.0.0.2", lb.imap); !strings.HasPrefix(g, "* BYE") {
		t.Errorf("second client from 127.0.0.2: %q, want * BYE (one unauthenticated connection per address)", g)
	}
	if _, _, g := greetingFrom(t, "127.0.0.3", lb.imap); !strings.HasPrefix(g, "* OK") {
		t.Errorf("client from 127.0.0.3: %q, want a greeting (its own address's limit)\n%s", g, n.logTail())
	}

	// Straight to tern, from outside the trusted network: served, and a
	// PROXY line of its own is a bad command.
	nc, br, g := greetingFrom(t, "127.0.0.4", n.addr)
	if !strings.HasPrefix(g, "* OK") {
		t.Fatalf("direct client from 127.0.0.4: %q, want a greeting", g)
	}
	if _, err := nc.Write([]byte("PROXY TCP4 127.0.0.3 127.0.0.1 1000 143\r\n")); err != nil {
		t.Fatal(err)
	}
	if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "PROXY BAD") {
		t.Errorf("PROXY line from an untrusted client: %q, want PROXY BAD", l)
	}
	// Straight to tern from the balancer's address, a command instead of
	// a header: closed without a greeting.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("A1 CAPABILITY\r\n")); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(3 * time.Second)) // before the header timeout
	if l, err := bufio.NewReader(nc).ReadString('\n'); l != "" || err == nil || os.IsTimeout(err) {
		t.Errorf("trusted address without a header: read %q, %v; want the connection closed", l, err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(n.logTail(), "without a valid PROXY header"); {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the connection without a header:\n%s", n.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
