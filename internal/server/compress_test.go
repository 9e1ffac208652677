package server_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/server"
)

// flateConn is the client's side of COMPRESS=DEFLATE: raw DEFLATE both
// ways, a sync flush after every write. in counts the bytes on the wire.
type flateConn struct {
	net.Conn
	fr   io.Reader
	fw   *flate.Writer
	in   atomic.Int64
	raw  net.Conn
	wire bytes.Buffer // the compressed bytes read, when recording
	rec  atomic.Bool  // record into wire
}

type countingReader struct {
	r  io.Reader
	fc *flateConn
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.fc.in.Add(int64(n))
	if c.fc.rec.Load() {
		c.fc.wire.Write(p[:n])
	}
	return n, err
}

func newFlateConn(nc net.Conn, pending io.Reader) *flateConn {
	fc := &flateConn{Conn: nc, raw: nc}
	fc.fr = flate.NewReader(io.MultiReader(pending, countingReader{nc, fc}))
	fc.fw, _ = flate.NewWriter(nc, flate.DefaultCompression)
	return fc
}

func (f *flateConn) Read(p []byte) (int, error) { return f.fr.Read(p) }

func (f *flateConn) Write(p []byte) (int, error) {
	n, err := f.fw.Write(p)
	if err == nil {
		err = f.fw.Flush()
	}
	return n, err
}

// compress sends COMPRESS DEFLATE, checks the uncompressed OK and switches
// the client to the compressed streams.
func (c *client) compress() *flateConn {
	c.t.Helper()
	c.ok("COMPRESS DEFLATE")
	// What the client's bufio read past the OK is compressed already.
	pending, _ := c.br.Peek(c.br.Buffered())
	fc := newFlateConn(c.conn, strings.NewReader(string(pending)))
	c.conn = fc
	c.br = bufio.NewReader(fc)
	return fc
}

func hasCap(caps []string, want string) bool {
	for _, l := range caps {
		if strings.HasPrefix(l, "* CAPABILITY ") && strings.Contains(l+" ", " "+want+" ") {
			return true
		}
	}
	return false
}

// TestCompressCapability: COMPRESS=DEFLATE is offered once logged in (the
// command is valid in authenticated and selected state), and no longer once
// compression is active; COMPRESS before login is refused.
func TestCompressCapability(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	c := ts.dialTLS()
	if caps := c.ok("CAPABILITY"); hasCap(caps, "COMPRESS=DEFLATE") {
		t.Fatalf("COMPRESS=DEFLATE before login: %q", caps)
	}
	c.expect("COMPRESS DEFLATE", "BAD")
	c.ok("LOGIN alice pw")
	if caps := c.ok("CAPABILITY"); !hasCap(caps, "COMPRESS=DEFLATE") {
		t.Fatalf("no COMPRESS=DEFLATE after login: %q", caps)
	}
	c.compress()
	if caps := c.ok("CAPABILITY"); hasCap(caps, "COMPRESS=DEFLATE") || !hasCap(caps, "IMAP4rev2") {
		t.Fatalf("capabilities with compression active: %q", caps)
	}
}

// TestCompressErrors: an unknown mechanism is BAD and leaves the stream
// uncompressed; a second COMPRESS is NO [COMPRESSIONACTIVE] and the
// compressed session goes on.
func TestCompressErrors(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	c := ts.login("alice", "pw")
	c.expect("COMPRESS GZIP", "BAD")
	c.expect("COMPRESS", "BAD")
	c.ok("NOOP") // still plain
	c.ok("SELECT INBOX")
	fc := c.compress()
	c.expect("COMPRESS DEFLATE", "NO [COMPRESSIONACTIVE]")
	// A small answer goes out as a stored block and a flush marker: its
	// bytes plus 10, and no compressor taken for it.
	in0 := fc.in.Load()
	c.ok("NOOP")
	if wire, want := fc.in.Load()-in0, int64(len(c.lastTag()+" OK NOOP completed\r\n")+10); wire != want {
		t.Fatalf("NOOP answer: %d bytes on the wire, want %d", wire, want)
	}
	c.ok("LOGOUT")
}

// TestCompressFetchLargeBody: SELECT and FETCH of a large body over
// the compressed stream, on plaintext TCP (where bodies otherwise go out by
// sendfile, uncompressed) and inside TLS. The body arrives intact, fewer
// bytes cross the wire than it has, and the server's byte counters count
// the compressed bytes on the wire.
func TestCompressFetchLargeBody(t *testing.T) {
	ms := newMonitoredServer(t, auth.Policy{})
	ms.addUser("alice", "pw")
	msg := bigMessage(600 << 10)
	a := ms.dial()
	a.ok("LOGIN alice pw")
	a.appendMsg("INBOX", "", msg)
	a.ok("LOGOUT")
	for _, tc := range []struct {
		name string
		dial func() *client
	}{{"plain", ms.dial}, {"tls", ms.dialTLS}} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.dial()
			c.t = t
			c.ok("LOGIN alice pw") // COMPRESS is valid once authenticated
			fc := c.compress()
			c.ok("SELECT INBOX")
			before := ms.scrape()[`tern_sent_bytes_total`]
			in0 := fc.in.Load()
			u := c.ok("FETCH 1 BODY.PEEK[]")
			wire := fc.in.Load() - in0
			want := fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n%s)", len(msg), msg)
			if len(u) != 1 || u[0] != want {
				t.Fatalf("FETCH over COMPRESS: got %d lines, first %.200q", len(u), u)
			}
			if wire <= 0 || wire > int64(len(msg))/3 {
				t.Fatalf("%d bytes on the wire for a %d-byte body", wire, len(msg))
			}
			// The server adds a write to the counter after the write
			// returns, which can be after the client has read it: wait
			// for the last one to be counted.
			sent := ms.scrape()[`tern_sent_bytes_total`] - before
			for deadline := time.Now().Add(5 * time.Second); sent < float64(wire) && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				sent = ms.scrape()[`tern_sent_bytes_total`] - before
			}
			if sent < float64(wire) || sent > float64(wire)+2048 {
				t.Fatalf("server counted %v bytes sent, the client read %d from the wire", sent, wire)
			}
			c.ok("LOGOUT")
		})
	}
}

// TestCompressOneFlushPerResponse: a large response is compressed as one
// run and sync-flushed once at its end, not at every buffer the writer
// hands over (which cost ratio and a flush per 8 KiB): the sync-flush
// marker (an empty stored block, 00 00 ff ff) appears a few times on the
// wire for a 600 KiB FETCH, not once per 8 KiB.
func TestCompressOneFlushPerResponse(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "pw")
	c := ts.dial()
	c.ok("LOGIN alice pw")
	msg := bigMessage(600 << 10)
	c.appendMsg("INBOX", "", msg)
	fc := c.compress()
	c.ok("EXAMINE INBOX")
	fc.rec.Store(true)
	u := c.ok("FETCH 1 BODY.PEEK[]")
	fc.rec.Store(false)
	if len(u) != 1 || !strings.HasSuffix(u[0], msg+")") {
		t.Fatalf("FETCH over COMPRESS: %d lines", len(u))
	}
	if n := bytes.Count(fc.wire.Bytes(), []byte{0, 0, 0xff, 0xff}); n > 3 {
		t.Fatalf("%d sync flushes in %d compressed bytes of one FETCH; want at most 3", n, fc.wire.Len())
	}
}

// TestCompressPipelined: compressed input the client sends right behind
// COMPRESS (in the same packet) is decompressed, not read as plain text.
func TestCompressPipelined(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	c := ts.login("alice", "pw")
	var buf strings.Builder
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	fw.Write([]byte("b NOOP\r\nc CAPABILITY\r\n"))
	fw.Flush()
	c.write("a COMPRESS DEFLATE\r\n" + buf.String())
	if l := c.readLine(); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("COMPRESS: %q", l)
	}
	pending, _ := c.br.Peek(c.br.Buffered())
	fc := newFlateConn(c.conn, strings.NewReader(string(pending)))
	fc.fw = fw // the client's compressor goes on
	fw.Reset(c.conn)
	c.conn, c.br = fc, bufio.NewReader(fc)
	if _, tagged := c.readUntil("b"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("b NOOP: %q", tagged)
	}
	if _, tagged := c.readUntil("c"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("c CAPABILITY: %q", tagged)
	}
	c.ok("NOOP")
}

// TestCompressIdle: updates during IDLE reach a compressed client at once
// (the compressor is flushed), and DONE ends IDLE.
func TestCompressIdle(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	c := ts.login("alice", "pw")
	c.compress()
	c.ok("SELECT INBOX")
	c.write("i IDLE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	other := ts.login("alice", "pw")
	other.compress() // APPEND's continuation request is flushed too
	for i := 1; i <= 2; i++ {
		other.appendMsg("INBOX", "", "Subject: hi\r\n\r\nhello\r\n")
		l := c.readLine()
		if strings.HasSuffix(l, " RECENT") {
			l = c.readLine()
		}
		if l != fmt.Sprintf("* %d EXISTS", i) {
			t.Fatalf("during IDLE: %q", l)
		}
	}
	c.write("DONE\r\n")
	if _, tagged := c.readUntil("i"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("IDLE: %q", tagged)
	}
	c.ok("FETCH 1:2 FLAGS")
}

// TestCompressNotify: NOTIFY events between commands reach a compressed
// client at once.
func TestCompressNotify(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	c := ts.login("alice", "pw")
	c.compress()
	c.ok("NOTIFY SET (personal (MessageNew MessageExpunge))")
	other := ts.login("alice", "pw")
	other.appendMsg("Drafts", "", "Subject: hi\r\n\r\nhello\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, `* STATUS Drafts (`) {
		t.Fatalf("NOTIFY: %q", l)
	}
	c.ok("NOOP")
}

// waitGoroutines waits until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > n {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d, want at most %d\n%s", g, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestCompressClientGone: a client that closes in the middle of a
// compressed command, or sends a corrupt stream, ends its session cleanly:
// the server goes on and no goroutine is left behind.
func TestCompressClientGone(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	warm := ts.login("alice", "pw")
	warm.ok("LOGOUT")
	time.Sleep(50 * time.Millisecond)
	g0 := runtime.NumGoroutine()

	// Half a command, then gone.
	c := ts.login("alice", "pw")
	fc := c.compress()
	fc.fw.Write([]byte("x FETCH 1:* (FLAGS"))
	fc.fw.Flush()
	c.conn.(*flateConn).raw.Close()

	// Half a deflate block (no flush), then gone.
	c = ts.login("alice", "pw")
	fc = c.compress()
	fc.fw.Write([]byte(strings.Repeat("y NOOP\r\n", 1000)))
	fc.raw.Close()

	// Not deflate at all: the server ends the connection.
	for _, junk := range []string{"\xff\xff\xff\xff\xff\xff\xff\xff", "a NOOP\r\n"} {
		c = ts.login("alice", "pw")
		fc = c.compress()
		if _, err := fc.raw.Write([]byte(junk)); err != nil {
			t.Fatal(err)
		}
		fc.raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := io.Copy(io.Discard, fc.raw); err != nil || n != 0 {
			t.Fatalf("after a corrupt stream %q: read %d bytes, %v; want the connection closed", junk, n, err)
		}
	}

	waitGoroutines(t, g0)
	d := ts.login("alice", "pw")
	d.compress()
	d.ok("NOOP")
}

// deflateOnce compresses s as a sync-flushed piece of a raw DEFLATE stream
// with a compressor of its own: pieces made this way may follow each other
// in one stream (none refers back to an earlier one).
func deflateOnce(s string) []byte {
	var b strings.Builder
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	fw.Write([]byte(s))
	fw.Flush()
	return []byte(b.String())
}

// idleConns opens n connections that log in, optionally start COMPRESS,
// select INBOX and IDLE. The client side keeps no compressor or decoder,
// so that the memory measured is the server's.
func idleConns(t *testing.T, ts *testServer, n int, compress bool) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	buf := make([]byte, 4096)
	waitFor := func(nc net.Conn, want string) {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []byte
		for !strings.Contains(string(got), want) {
			k, err := nc.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %q: %v (got %q)", want, err, got)
			}
			got = append(got, buf[:k]...)
		}
	}
	for range n {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		waitFor(nc, "\r\n")
		io.WriteString(nc, "a LOGIN alice pw\r\n")
		waitFor(nc, "a OK")
		rest := "b SELECT INBOX\r\nc IDLE\r\n"
		if compress {
			io.WriteString(nc, "z COMPRESS DEFLATE\r\n")
			waitFor(nc, "z OK")
			nc.Write(deflateOnce(rest))
			// The compressed answer ends with the sync flush marker.
			waitFor(nc, "\x00\x00\xff\xff")
		} else {
			io.WriteString(nc, rest)
			waitFor(nc, "+ idling")
		}
		conns = append(conns, nc)
	}
	return conns
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// TestCompressIdleMemory: an idling compressed connection holds no
// compressor (each is 0.8 MiB) and no large buffer, only its decoder with
// a window the size of what the client sent (not 32 KiB); an uncompressed
// one costs what it did. The numbers measured
// (heap and stacks of server and test client together, per connection)
// are logged.
func TestCompressIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens many connections")
	}
	const n = 100
	ts := newTestServer(t, serverOpts{insecureAuth: true, mutate: func(c *server.Config) {
		c.MaxUserIPConns, c.MaxUserConns, c.ConnBurstPerIP, c.ConnRatePerIP = 1000, 1000, 1000, 1000
	}})
	ts.addUser("alice", "pw")
	idleConns(t, ts, 2, true) // warm the pools and the mailbox index
	base := memInUse()
	plain := idleConns(t, ts, n, false)
	mid := memInUse()
	compressed := idleConns(t, ts, n, true)
	end := memInUse()
	perPlain := (int64(mid) - int64(base)) / n
	perCompressed := (int64(end) - int64(mid)) / n
	t.Logf("idle in IDLE, per connection: plain %d KiB, compressed %d KiB", perPlain>>10, perCompressed>>10)
	if perCompressed > 48<<10 {
		t.Errorf("an idle compressed connection costs %d KiB", perCompressed>>10)
	}
	if perPlain > 32<<10 {
		t.Errorf("an idle plain connection costs %d KiB", perPlain>>10)
	}
	runtime.KeepAlive(plain)
	runtime.KeepAlive(compressed)
}

// TestCompressShutdown: shutdown interrupts a compressed IDLE (through the
// read deadline of the decompressed input) and says BYE compressed.
func TestCompressShutdown(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	c := ts.login("alice", "pw")
	c.compress()
	c.ok("SELECT INBOX")
	c.write("i IDLE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- ts.srv.Shutdown(ctx)
	}()
	if l := c.readLine(); !strings.HasPrefix(l, "* BYE ") {
		t.Fatalf("after shutdown: %q", l)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// partialFlusher compresses like zlib with Z_PARTIAL_FLUSH (NeoMutt,
// JZlib-based clients): each message is one fixed-Huffman block followed
// by an empty one, and only whole bytes are sent; the bits of the last
// partial byte go out with the next message.
type partialFlusher struct {
	bits  uint64
	nbits uint
}

func (p *partialFlusher) put(v uint64, n uint) {
	p.bits |= v << p.nbits
	p.nbits += n
}

// putCode writes a Huffman code, most significant bit first.
func (p *partialFlusher) putCode(code uint64, n uint) {
	var r uint64
	for i := uint(0); i < n; i++ {
		r = r<<1 | (code>>i)&1
	}
	p.put(r, n)
}

func (p *partialFlusher) message(s string) []byte {
	var out []byte
	drain := func() {
		for p.nbits >= 8 {
			out = append(out, byte(p.bits))
			p.bits >>= 8
			p.nbits -= 8
		}
	}
	p.put(0b010, 3) // BFINAL=0, BTYPE=01 (fixed Huffman)
	for i := 0; i < len(s); i++ {
		if c := uint64(s[i]); c < 144 {
			p.putCode(0x30+c, 8)
		} else {
			p.putCode(0x190+c-144, 9)
		}
		drain()
	}
	p.putCode(0, 7) // end of block
	p.put(0b010, 3) // the empty block of the partial flush
	p.putCode(0, 7)
	drain()
	return out
}

// TestCompressPartialFlush: a client that flushes with Z_PARTIAL_FLUSH
// (no empty stored block, not byte-aligned) gets its answers; Go's
// compress/flate would keep such commands until 32 KiB had arrived.
func TestCompressPartialFlush(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	c := ts.login("alice", "pw")
	c.ok("COMPRESS DEFLATE")
	pending, _ := c.br.Peek(c.br.Buffered())
	fc := newFlateConn(c.conn, strings.NewReader(string(pending)))
	c.br = bufio.NewReader(fc)
	var pf partialFlusher
	for i, cmd := range []string{"p1 NOOP", "p2 SELECT INBOX", "p3 CAPABILITY", "p4 LOGOUT"} {
		if _, err := fc.raw.Write(pf.message(cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, tagged := c.readUntil(fmt.Sprintf("p%d", i+1)); !strings.HasPrefix(tagged, "OK") {
			t.Fatalf("%s: %q", cmd, tagged)
		}
	}
}
