package proxied

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
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
	return listenOn(t, inner, 300*time.Millisecond, trusted...)
}

// listenOn wraps inner with trusted networks and a header timeout.
func listenOn(t *testing.T, inner net.Listener, timeout time.Duration, trusted ...string) *Listener {
	t.Helper()
	nets, err := ParseNetworks(trusted)
	if err != nil {
		t.Fatal(err)
	}
	l := wrap(inner, nets, timeout, slog.New(slog.DiscardHandler))
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

// udpHeader is a version 2 header for a UDP client, which a TCP
// listener cannot have.
func udpHeader(t *testing.T) []byte {
	t.Helper()
	h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.UDPv4,
		SourceAddr:      &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 53},
		DestinationAddr: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 143}}
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
	if BalancerCheck(c) {
		t.Error("a client's connection is marked as the balancer's own")
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
	for name, hdr := range map[string][]byte{
		"v2 LOCAL":   v2Header(t, "192.0.2.9:1000", "192.0.2.10:143", true),
		"v1 UNKNOWN": []byte("PROXY UNKNOWN\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			l := listen(t, "127.0.0.1/32")
			client := send(t, l, hdr)
			c := acceptWithin(t, l, 2*time.Second)
			if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr = %s, want the proxy's own %s", got, want)
			}
			if !BalancerCheck(c) {
				t.Error("the connection is not marked as the balancer's own")
			}
		})
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
		"v2 udp":    udpHeader(t),
	} {
		t.Run(name, func(t *testing.T) {
			l := listen(t, "127.0.0.1")
			bad := send(t, l, b)
			send(t, l, []byte("PROXY TCP4 192.0.2.1 198.51.100.2 1 143\r\n"))
			c := acceptWithin(t, l, 2*time.Second)
			if got := c.RemoteAddr().String(); got != "192.0.2.1:1" {
				t.Errorf("accepted %s first, want the good connection", got)
			}
			assertClosed(t, bad, 2*time.Second)
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

// assertClosed fails unless the peer closes c within d.
func assertClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	if n, err := c.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Errorf("read %d, %v; want the connection closed by the listener", n, err)
	}
}

// A trusted peer slow to send its header holds up no other connection.
func TestSlowHeaderBlocksNoOne(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := listenOn(t, inner, 5*time.Second, "127.0.0.1")
	send(t, l, []byte("PROXY TCP4 192.0.2.1 "))
	send(t, l, []byte("PROXY TCP4 192.0.2.2 198.51.100.2 2 143\r\n"))
	c := acceptWithin(t, l, time.Second)
	if got := c.RemoteAddr().String(); got != "192.0.2.2:2" {
		t.Errorf("accepted %s", got)
	}
}

// Close closes the connections whose headers are still being read.
func TestCloseClosesPending(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := listenOn(t, inner, 30*time.Second, "127.0.0.1")
	slow := send(t, l, []byte("PROXY TCP4 "))
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		n := len(l.pending)
		l.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection never became pending")
		}
	}
	l.Close()
	assertClosed(t, slow, 2*time.Second)
}

// Beyond maxPending connections waiting for their headers, a trusted
// peer's new connection is closed at once.
func TestTooManyPending(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := listenOn(t, inner, 30*time.Second, "127.0.0.1")
	l.mu.Lock()
	l.maxPending = 2
	l.mu.Unlock()
	send(t, l, nil)
	send(t, l, nil)
	assertClosed(t, send(t, l, nil), 2*time.Second)
}

// A version 2 header announcing more than go-proxyproto accepts is
// refused before its bytes are read or allocated.
func TestV2TooLong(t *testing.T) {
	l := listen(t, "127.0.0.1")
	hdr := append(append([]byte{}, proxyproto.SIGV2...), 0x21, 0x11, 0xff, 0xff)
	assertClosed(t, send(t, l, hdr), 200*time.Millisecond) // before the 300 ms timeout
}

// On a dual-stack listener an IPv4 peer arrives IPv4-mapped; it is
// matched against IPv4 networks, and mapped prefixes are read as IPv4.
func TestMappedPeerTrusted(t *testing.T) {
	for _, trusted := range []string{"127.0.0.1", "::ffff:127.0.0.0/104"} {
		t.Run(trusted, func(t *testing.T) {
			inner, err := net.Listen("tcp", "[::]:0")
			if err != nil {
				t.Skipf("no dual-stack listener: %v", err)
			}
			l := listenOn(t, inner, 300*time.Millisecond, trusted)
			port := inner.Addr().(*net.TCPAddr).Port
			c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				t.Skipf("dual-stack listener not reachable over IPv4: %v", err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 40123 143\r\n")); err != nil {
				t.Fatal(err)
			}
			if got := acceptWithin(t, l, 2*time.Second).RemoteAddr().String(); got != "192.0.2.1:40123" {
				t.Errorf("RemoteAddr = %s, want the header's 192.0.2.1:40123", got)
			}
		})
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
	got, err := ParseNetworks([]string{"10.1.2.3/8", "192.0.2.7", "2001:db8::/32", "::ffff:192.0.2.8", "::ffff:10.0.0.0/104"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "192.0.2.8/32", "10.0.0.0/8"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("network %d = %s, want %s", i, p, want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.org", "", "::ffff:0.0.0.0/64"} {
		if _, err := ParseNetworks([]string{bad}); err == nil {
			t.Errorf("ParseNetworks(%q) accepted", bad)
		}
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	if l := Wrap(inner, nil, nil); l != inner {
		t.Errorf("Wrap without trusted networks = %v, want the inner listener", l)
	}
	unix, err := net.Listen("unix", t.TempDir()+"/lmtp.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	if l := Wrap(unix, got, nil); l != unix {
		t.Errorf("Wrap of a Unix socket listener = %v, want the inner listener", l)
	}
}
