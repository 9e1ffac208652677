package s3test

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
)

// Proxy forwards TCP connections from a loopback port to a target (an S3
// server's address) and can fail in the two ways a store does: Cut
// closes its listener and every connection (connections are refused),
// Freeze keeps connections open but moves no more bytes (a store that
// does not answer). Mend undoes both.
type Proxy struct {
	t      testing.TB
	target string
	Addr   string // 127.0.0.1:PORT, the same after Mend

	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	cut    bool
	frozen bool
	thaw   chan struct{} // closed by Mend when frozen

	served   atomic.Int64 // bytes from the target to clients
	freezeAt int64        // Served at which to freeze; -1: none
}

// Served is how many bytes the target has sent to clients so far.
func (p *Proxy) Served() int64 { return p.served.Load() }

// StartProxy starts a proxy to target (HOST:PORT); the test's cleanup
// cuts it.
func StartProxy(t testing.TB, target string) *Proxy {
	p := &Proxy{t: t, target: target, Addr: "127.0.0.1:0", freezeAt: -1}
	p.listen()
	t.Cleanup(p.Cut)
	return p
}

// Proxied starts a proxy in front of cfg's server and returns cfg
// pointed at the proxy, with the proxy.
func Proxied(t testing.TB, cfg blob.S3Config) (blob.S3Config, *Proxy) {
	t.Helper()
	p := StartProxy(t, strings.TrimPrefix(cfg.Endpoint, "http://"))
	cfg.Endpoint = p.Endpoint()
	return cfg, p
}

// Endpoint is the proxy's http:// endpoint.
func (p *Proxy) Endpoint() string { return "http://" + p.Addr }

func (p *Proxy) listen() {
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		p.t.Fatalf("s3test proxy: %v", err)
	}
	p.mu.Lock()
	p.ln, p.Addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *Proxy) forward(c net.Conn) {
	b, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut { // accepted just before Cut
		p.mu.Unlock()
		c.Close()
		b.Close()
		return
	}
	p.conns = append(p.conns, c, b)
	p.mu.Unlock()
	go func() { p.copy(b, c, nil); b.Close() }()
	p.copy(c, b, &p.served)
	c.Close()
}

// copy moves bytes from src to dst, holding them while the proxy is
// frozen; count, if not nil, counts them and is the one FreezeAfter
// watches.
func (p *Proxy) copy(dst, src net.Conn, count *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for chunk := buf[:n]; len(chunk) > 0; {
			p.waitThaw()
			k := len(chunk)
			if count != nil {
				k = p.allow(k, count)
			}
			if _, werr := dst.Write(chunk[:k]); werr != nil {
				return
			}
			chunk = chunk[k:]
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) waitThaw() {
	p.mu.Lock()
	frozen, thaw := p.frozen, p.thaw
	p.mu.Unlock()
	if frozen {
		select {
		case <-thaw:
		case <-time.After(time.Minute): // a test that never mends
		}
	}
}

// Cut closes the listener and every connection: connections are
// refused until Mend.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// allow returns how many of n bytes from the target may pass before the
// proxy freezes (FreezeAfter), and counts them in count; 0 freezes it
// now.
func (p *Proxy) allow(n int, count *atomic.Int64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := int64(n)
	if p.freezeAt >= 0 {
		k = min(k, p.freezeAt-count.Load())
		if k <= 0 {
			p.freezeAt = -1
			p.freezeLocked()
			return 0
		}
	}
	count.Add(k)
	return int(k)
}

// FreezeAfter lets n more bytes come from the target, then freezes: a
// response that stops half-way.
func (p *Proxy) FreezeAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.freezeAt = p.served.Load() + n
}

// Freeze stops moving bytes: connections open, requests sent, nothing
// answers (until Mend).
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.freezeLocked()
}

func (p *Proxy) freezeLocked() {
	if !p.frozen {
		p.frozen, p.thaw = true, make(chan struct{})
	}
}

// Mend listens again after Cut (on the same port) and moves bytes again
// after Freeze.
func (p *Proxy) Mend() {
	p.mu.Lock()
	cut := p.cut
	p.cut = false
	if p.frozen {
		p.frozen = false
		close(p.thaw)
	}
	p.mu.Unlock()
	if cut {
		p.listen()
	}
}
