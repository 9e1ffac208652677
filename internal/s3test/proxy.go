package s3test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
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
// does not answer). Mend undoes both. HoldDeletes and SendHeld make a
// DELETE reach the server late, after its client gave up on it.
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

	holdDeletes bool     // keep DELETE requests instead of sending them
	held        [][]byte // the kept requests, each with the rest of its connection
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
	go func() { p.copy(b, c, nil, p.holdRequests()); b.Close() }()
	p.copy(c, b, &p.served, nil)
	c.Close()
}

// copy moves bytes from src to dst, holding them while the proxy is
// frozen; count, if not nil, counts them and is the one FreezeAfter
// watches; keep, if not nil, takes each chunk read and says whether it
// is kept instead of sent.
func (p *Proxy) copy(dst, src net.Conn, count *atomic.Int64, keep func([]byte) bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if keep != nil && n > 0 && keep(buf[:n]) {
			n = 0
		}
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

// holdRequests returns copy's keep for one connection's requests: once
// a chunk that starts a DELETE comes while HoldDeletes is on, it and all
// that follows on the connection are kept for SendHeld. (A request comes
// in one chunk from the clients the tests use.)
func (p *Proxy) holdRequests() func([]byte) bool {
	held := -1
	return func(chunk []byte) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if held < 0 && p.holdDeletes && bytes.HasPrefix(chunk, []byte("DELETE ")) {
			held = len(p.held)
			p.held = append(p.held, nil)
		}
		if held < 0 {
			return false
		}
		p.held[held] = append(p.held[held], chunk...)
		return true
	}
}

// HoldDeletes keeps the DELETE requests clients send from now on: the
// client waits for an answer that does not come until it gives up.
func (p *Proxy) HoldDeletes() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdDeletes = true
}

// SendHeld stops holding DELETEs and sends each kept request to the
// target on a connection of its own, reading the answer: the request
// lands late. It returns how many it sent.
func (p *Proxy) SendHeld() int {
	p.mu.Lock()
	held := p.held
	p.holdDeletes, p.held = false, nil
	p.mu.Unlock()
	for _, req := range held {
		p.sendLate(req)
	}
	return len(held)
}

func (p *Proxy) sendLate(req []byte) {
	c, err := net.Dial("tcp", p.target)
	if err != nil {
		p.t.Fatalf("s3test proxy: late request: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		p.t.Fatalf("s3test proxy: late request: %v", err)
	}
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		p.t.Fatalf("s3test proxy: late request's answer: %v", err)
	}
	r.Body.Close()
	if r.StatusCode/100 != 2 {
		p.t.Fatalf("s3test proxy: late request answered %s", r.Status)
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
