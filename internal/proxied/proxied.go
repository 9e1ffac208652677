// Package proxied serves connections that arrive through a TCP load
// balancer (HAProxy's send-proxy or send-proxy-v2, or any other speaker of
// the PROXY protocol, versions 1 and 2): a connection from one of the
// trusted networks must begin with a PROXY header, and the client's
// address it names becomes the connection's RemoteAddr. So per-address
// limits, failed-login counters and logs see the client, not the
// balancer. Connections from anywhere else are served as they are; a
// PROXY header from them is not read (it reaches the protocol as a bad
// command), so no client can claim another's address.
//
// The header is read exactly, byte for byte, so nothing after it is
// buffered here: the connection handed on is the TCP connection itself
// (NetConn), which sendfile and idle parking use directly.
package proxied

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// HeaderTimeout bounds how long a trusted peer may take to send its
// header after connecting.
const HeaderTimeout = 5 * time.Second

// maxV1 is the longest version 1 header, CRLF included (the
// specification's 107 bytes).
const maxV1 = 107

// maxPending bounds the connections from trusted peers whose headers are
// being read at once (each a goroutine and a descriptor for up to
// HeaderTimeout); more are closed at once. A balancer sends its header
// as it connects, so only a misbehaving one comes near it.
const maxPending = 1024

// ParseNetworks parses trusted networks: CIDR prefixes ("10.0.0.0/8") or
// single addresses ("192.0.2.7").
func ParseNetworks(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() { // peers are matched unmapped
				if p.Bits() < 96 {
					return nil, fmt.Errorf("trusted network %q: an IPv4-mapped prefix shorter than /96", s)
				}
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted network %q: not an address or CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Listener accepts from an inner listener and reads the PROXY header of
// every connection from a trusted network, each in its own goroutine, so
// a slow peer never holds up the others.
type Listener struct {
	net.Listener
	trusted []netip.Prefix
	timeout time.Duration
	log     *slog.Logger

	ready chan accepted
	done  chan struct{}
	once  sync.Once

	mu         sync.Mutex
	pending    map[net.Conn]struct{} // trusted connections whose header is being read
	maxPending int
}

// accepted is one result of the inner listener's Accept, header read.
type accepted struct {
	c   net.Conn
	err error
}

// Wrap returns ln itself when trusted is empty or ln is not a TCP
// listener (LMTP on a Unix socket), else a Listener over it that takes
// client addresses from the PROXY headers of the connections from
// trusted.
func Wrap(ln net.Listener, trusted []netip.Prefix, log *slog.Logger) net.Listener {
	if _, tcp := ln.Addr().(*net.TCPAddr); len(trusted) == 0 || !tcp {
		return ln
	}
	return wrap(ln, trusted, HeaderTimeout, log)
}

// wrap is Wrap with the header timeout given.
func wrap(ln net.Listener, trusted []netip.Prefix, timeout time.Duration, log *slog.Logger) *Listener {
	l := &Listener{Listener: ln, trusted: trusted, timeout: timeout, log: log,
		ready: make(chan accepted), done: make(chan struct{}),
		pending: map[net.Conn]struct{}{}, maxPending: maxPending}
	go l.acceptLoop()
	return l
}

// Accept returns the next connection, its header read when it came from
// a trusted network.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case a := <-l.ready:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the connections whose headers are
// still being read.
func (l *Listener) Close() error {
	l.stop()
	return l.Listener.Close()
}

// stop ends Accept and closes the pending connections.
func (l *Listener) stop() {
	l.once.Do(func() {
		close(l.done)
		l.mu.Lock()
		defer l.mu.Unlock()
		for c := range l.pending {
			c.Close()
		}
	})
}

// acceptLoop accepts until the inner listener is closed. Errors are
// handed to Accept (whose caller backs off on transient ones).
func (l *Listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.stop()
				return
			}
			if !l.hand(accepted{err: err}) {
				return
			}
			continue
		}
		if !l.isTrusted(c.RemoteAddr()) {
			l.hand(accepted{c: c})
			continue
		}
		if !l.track(c) {
			continue
		}
		go l.proxied(c)
	}
}

// track records c as pending; false (c closed) when the listener is
// closed or too many are pending.
func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		c.Close()
		return false
	default:
	}
	if len(l.pending) >= l.maxPending {
		l.log.Warn("too many connections from trusted proxies waiting for their PROXY headers; closed",
			"proxy", c.RemoteAddr().String(), "pending", len(l.pending))
		c.Close()
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

// proxied reads the header of c, a trusted peer's connection, and hands
// the connection on (or closes it).
func (l *Listener) proxied(c net.Conn) {
	pc, err := readHeader(c, l.timeout)
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		select {
		case <-l.done: // closed by Close
		default:
			l.log.Warn("connection from a trusted proxy without a valid PROXY header; closed",
				"proxy", c.RemoteAddr().String(), "err", err)
		}
		c.Close()
		return
	}
	l.hand(accepted{c: pc})
}

// hand gives a to Accept, or closes its connection if the listener is
// closed first; it reports whether Accept took it.
func (l *Listener) hand(a accepted) bool {
	select {
	case l.ready <- a:
		return true
	case <-l.done:
		if a.c != nil {
			a.c.Close()
		}
		return false
	}
}

// isTrusted reports whether addr is in one of the trusted networks.
func (l *Listener) isTrusted(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Conn is a connection whose addresses came from a PROXY header.
type Conn struct {
	net.Conn
	remote, local net.Addr
	check         bool // a LOCAL or UNKNOWN header: the balancer's own connection
}

// BalancerCheck reports whether c came with a version 2 LOCAL or a
// version 1 UNKNOWN header: the balancer's own connection, such as a
// health check (HAProxy's check-send-proxy sends one or the other), not
// a client's. Its addresses are the connection's own.
func BalancerCheck(c net.Conn) bool {
	p, ok := c.(*Conn)
	return ok && p.check
}

// RemoteAddr is the client's address, as the proxy saw it.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is the address the client connected to, as the proxy saw it.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// NetConn is the connection from the proxy (a *net.TCPConn), positioned
// after the header.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// readHeader reads c's PROXY header within timeout and returns c with
// the addresses it names. A LOCAL or UNKNOWN header (the proxy's own
// connection, its health check) keeps c's addresses and marks c
// (BalancerCheck); a client on a Unix socket of the balancer's host
// leaves c as it is; a datagram header is refused.
func readHeader(c net.Conn, timeout time.Duration) (net.Conn, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	raw, err := readHeaderBytes(c)
	if err != nil {
		return nil, err
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear deadline: %w", err)
	}
	h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, fmt.Errorf("parse header: %w", err)
	}
	if h.Command.IsLocal() { // go-proxyproto reads version 1's UNKNOWN as LOCAL
		return &Conn{Conn: c, remote: c.RemoteAddr(), local: c.LocalAddr(), check: true}, nil
	}
	if h.TransportProtocol.IsDatagram() {
		return nil, errors.New("PROXY header for a datagram (UDP) connection")
	}
	src, dst, ok := h.TCPAddrs()
	if !ok { // no address family, or a client on a Unix socket of the balancer's host
		return c, nil
	}
	return &Conn{Conn: c, remote: src, local: dst}, nil
}

// readHeaderBytes reads exactly one PROXY header from r: version 2's
// fixed part and the length it gives, or version 1's line up to its
// CRLF one byte at a time. Twelve bytes are safe to read first: the
// version 2 signature is twelve bytes and the shortest version 1 header
// ("PROXY UNKNOWN\r\n") fifteen.
func readHeaderBytes(r io.Reader) ([]byte, error) {
	b := make([]byte, 12, 64)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	switch {
	case bytes.Equal(b, proxyproto.SIGV2):
		b = b[:16]
		if _, err := io.ReadFull(r, b[12:]); err != nil {
			return nil, fmt.Errorf("read header: %w", err)
		}
		n := int(binary.BigEndian.Uint16(b[14:16]))
		if n > int(proxyproto.MaxV2HeaderSize) {
			return nil, fmt.Errorf("version 2 header of %d bytes, more than %d", n, proxyproto.MaxV2HeaderSize)
		}
		b = append(b, make([]byte, n)...)
		if _, err := io.ReadFull(r, b[16:]); err != nil {
			return nil, fmt.Errorf("read header: %w", err)
		}
		return b, nil
	case bytes.HasPrefix(b, proxyproto.SIGV1):
		one := make([]byte, 1)
		for !bytes.HasSuffix(b, []byte("\r\n")) {
			if len(b) >= maxV1 {
				return nil, errors.New("version 1 header longer than 107 bytes")
			}
			if _, err := io.ReadFull(r, one); err != nil {
				return nil, fmt.Errorf("read header: %w", err)
			}
			b = append(b, one[0])
		}
		return b, nil
	}
	return nil, errors.New("no PROXY header")
}
