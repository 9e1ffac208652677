package proxied

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// listen wraps a loopback listener with trusted networks and a short
// header timeout.
func listen(t *testing.T, trusted ...string) *Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nets, err := ParseNetworks(trusted)
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(inner, nets, slog.New(slog.DiscardHandler)).(*Listener)
	l.timeout = 300 * time.Millisecond
	t.Cleanup(func() { l.Close() })
	return l
}

// send connects to l and writes b in one write.
func send(t *testing.T, l net.Listener, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// acceptWithin returns the next accepted connection, failing after d.
func acceptWithin(t *testing.T, l net.Listener, d time.Duration) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(d):
		t.Fatalf("nothing accepted within %v", d)
		return nil
	}
}

// readN reads exactly n bytes from c.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func v2Header(t *testing.T, src, dst string, local bool) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	if local {
		h.Command = proxyproto.LOCAL
	}
	if err := h.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("imap.example.org")}}); err != nil {
		t.Fatal(err)
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTrustedV1(t *testing.T) {
	l := listen(t, "127.0.0.0/8")
	send(t, l, []byte("PROXY TCP4 192.0.2.1 198.51.100.2 40123 143\r\nA1 NOOP\r\n"))
	c := acceptWithin(t, l, 2*time.Second)
	if got := c.RemoteAddr().String(); got != "192.0.2.1:40123" {
		t.Errorf("RemoteAddr = %s, want 192.0.2.1:40123", got)
	}
	if got := c.LocalAddr().String(); got != "198.51.100.2:143" {
		t.Errorf("LocalAddr = %s, want 198.51.100.2:143", got)
	}
	if _, ok := c.(*Conn).NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn is %T, want *net.TCPConn", c.(*Conn).NetConn())
	}
	// Nothing after the header was consumed with it: the TCP connection
	// itself reads the first command.
	if got := readN(t, c.(*Conn).NetConn(), 9); got != "A1 NOOP\r\n" {
		t.Errorf("after the header: %q", got)
	}
}

func TestTrustedV2IPv6WithTLV(t *testing.T) {
	l := listen(t, "127.0.0.1")
	send(t, l, append(v2Header(t, "[2001:db8::7]:50000", "[2001:db8::1]:993", false), "hello"...))
	c := acceptWithin(t, l, 2*time.Second)
	if got := c.RemoteAddr().String(); got != "[2001:db8::7]:50000" {
		t.Errorf("RemoteAddr = %s", got)
	}
	if got := readN(t, c, 5); got != "hello" {
		t.Errorf("after the header: %q", got)
	}
}

func TestTrustedLocalKeepsAddresses(t *testing.T) {
	l := listen(t, "127.0.0.1/32")
	client := send(t, l, v2Header(t, "192.0.2.9:1000", "192.0.2.10:143", true))
	c := acceptWithin(t, l, 2*time.Second)
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want the proxy's own %s", got, want)
	}
}

// A trusted peer that sends no header, a bad one, or none in time is
// closed and never accepted; the connection after it is.
func TestTrustedWithoutHeaderClosed(t *testing.T) {
	for name, b := range map[string][]byte{
		"imap":      []byte("A1 LOGIN alice secret\r\n"),
		"bad v1":    []byte("PROXY TCP4 999.0.2.1 198.51.100.2 1 2\r\n"),
		"long v1":   []byte("PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n"),
		"short":     []byte("PROXY"),
		"silent":    nil,
		"v2 cut":    v2Header(t, "192.0.2.1:1", "192.0.2.2:2", false)[:20],
		"v2 bad ip": append(append([]byte{}, proxyproto.SIGV2...), 0x21, 0x11, 0, 4, 1, 2, 3, 4),
	} {
		t.Run(name, func(t *testing.T) {
			l := listen(t, "127.0.0.1")
			bad := send(t, l, b)
			send(t, l, []byte("PROXY TCP4 192.0.2.1 198.51.100.2 1 143\r\n"))
			c := acceptWithin(t, l, 2*time.Second)
			if got := c.RemoteAddr().String(); got != "192.0.2.1:1" {
				t.Errorf("accepted %s first, want the good connection", got)
			}
			bad.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := bad.Read(make([]byte, 1)); err == nil || errors.Is(err, net.ErrClosed) {
				t.Errorf("bad connection: read %d, %v; want it closed by the listener", n, err)
			}
		})
	}
}

// A connection from outside the trusted networks is served as it is: its
// PROXY header is not read, so it cannot claim an address.
func TestUntrustedHeaderNotRead(t *testing.T) {
	l := listen(t, "192.0.2.0/24")
	hdr := "PROXY TCP4 192.0.2.1 198.51.100.2 40123 143\r\n"
	client := send(t, l, []byte(hdr))
	c := acceptWithin(t, l, 2*time.Second)
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want the peer's own %s", got, want)
	}
	if got := readN(t, c, len(hdr)); got != hdr {
		t.Errorf("read %q, want the header's bytes untouched", got)
	}
}

// A trusted peer slow to send its header holds up no other connection.
func TestSlowHeaderBlocksNoOne(t *testing.T) {
	l := listen(t, "127.0.0.1")
	l.timeout = 5 * time.Second
	send(t, l, []byte("PROXY TCP4 192.0.2.1 "))
	send(t, l, []byte("PROXY TCP4 192.0.2.2 198.51.100.2 2 143\r\n"))
	c := acceptWithin(t, l, time.Second)
	if got := c.RemoteAddr().String(); got != "192.0.2.2:2" {
		t.Errorf("accepted %s", got)
	}
}

func TestCloseEndsAccept(t *testing.T) {
	l := listen(t, "127.0.0.1")
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func TestParseNetworks(t *testing.T) {
	got, err := ParseNetworks([]string{"10.1.2.3/8", "192.0.2.7", "2001:db8::/32", "::ffff:192.0.2.8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "192.0.2.8/32"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("network %d = %s, want %s", i, p, want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.org", ""} {
		if _, err := ParseNetworks([]string{bad}); err == nil {
			t.Errorf("ParseNetworks(%q) accepted", bad)
		}
	}
	if l := Wrap(nil, nil, nil); l != nil {
		t.Errorf("Wrap without trusted networks = %v, want the inner listener", l)
	}
}
