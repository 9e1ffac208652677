package server

import (
	"bufio"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/inflate"
)

// COMPRESS=DEFLATE (RFC 4978). After the tagged OK of COMPRESS DEFLATE both
// directions carry one raw DEFLATE stream (RFC 1951, no zlib header) each,
// inside TLS when TLS is on. The connection's net.Conn is replaced by a
// compressConn, so everything above it (the bufio buffers, IDLE's and
// waitInput's small reads, read deadlines as wake-ups) works unchanged.
//
// Memory. Output: a flate.Writer is large (about 0.8 MiB at compressLevel,
// 1.1 MiB at BestSpeed, in Go 1.26), so a connection holds one only
// while it writes: it is taken from a free list at the first write after a wait
// for input and given back when the connection waits again (conn.release).
// Every write ends with a sync flush, so the stream is always at a byte
// aligned block boundary there, and a fresh compressor may continue it: a
// DEFLATE decoder does not care whether later blocks refer back to earlier
// ones. Responses of one command batch share a history; a new batch starts
// without one. Input: the decoder's window (up to 32 KiB, as large as what
// the client has sent) is state the client's compressor may refer to at
// any time, so each compressed connection keeps its decoder for its
// lifetime.
//
// Input is decoded (internal/inflate: compress/flate's decoder changed to
// hand out each block's bytes at its end, for clients that flush with
// Z_PARTIAL_FLUSH) by a goroutine of the connection into a net.Pipe: a
// flate reader's errors are sticky, so it must never see the read deadline
// that interrupts a waiting connection (IDLE, NOTIFY, shutdown). Deadlines
// apply to the pipe instead; the decoder reads the socket without one.

// compressLevel trades CPU for bytes on the wire. Measured on generated
// mail headers sync-flushed every 8 KiB (Go 1.26, 2-core VM): level 1
// 23% of the input at ~107 MB/s, level 2 18% at ~120 MB/s, level 4 17% at
// ~95 MB/s, level 6 15% at ~54 MB/s. Level 2 is both faster and smaller
// than BestSpeed here, and its writer is smaller too (0.8 MiB vs 1.1 MiB).
const compressLevel = 2

// idleDeflaters keeps a few compressors between uses. Not a sync.Pool: a
// pool is emptied by every other GC, and a busy server collects often, so
// nearly every response batch would allocate 0.8 MiB anew. At most
// GOMAXPROCS are kept (they can be busy at once); more are dropped.
var idleDeflaters = make(chan *deflater, runtime.GOMAXPROCS(0))

var inflateBufPool = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

func getDeflater() *deflater {
	select {
	case d := <-idleDeflaters:
		return d
	default:
	}
	d := &deflater{out: bufio.NewWriterSize(nil, 8192)}
	w, err := flate.NewWriter(d.out, compressLevel)
	if err != nil {
		panic(err) // only for an invalid level
	}
	d.fw = w
	return d
}

func putDeflater(d *deflater) {
	d.out.Reset(nil)
	d.fw.Reset(d.out)
	select {
	case idleDeflaters <- d:
	default:
	}
}

func cmdCompress(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.CompressArgs)
	if args.Mechanism != "DEFLATE" {
		return bad("", "Unknown compression mechanism")
	}
	if c.compress != nil {
		return no("COMPRESSIONACTIVE", "DEFLATE is already active")
	}
	c.tagged("OK", "", "DEFLATE active")
	if err := c.flush(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	c.startCompress()
	return errOKSent
}

// startCompress puts compression under the codec: right after the CRLF of
// the tagged OK in both directions. Input already read past the command
// arrived after the client's COMPRESS and is compressed input.
func (c *conn) startCompress() {
	c.compress = newCompressConn(c.nc, c.unreadInput())
	c.nc = c.compress
	c.setupIO()
}

// unreadInput copies what was read from the connection but not parsed yet.
func (c *conn) unreadInput() []byte {
	var b []byte
	if c.br != nil && c.br.Buffered() > 0 {
		p, _ := c.br.Peek(c.br.Buffered())
		b = append(b, p...)
	}
	if c.prefix != nil {
		b = append(b, c.prefix.pre...)
	}
	return b
}

// deflater is a compressor with a buffer under it: flate writes its
// output in pieces of a few hundred bytes, which would each become a
// syscall and, under TLS, a record.
type deflater struct {
	fw  *flate.Writer
	out *bufio.Writer
}

// compressConn is a net.Conn that compresses what is written to it and
// decompresses what is read from it. Read deadlines apply to the
// decompressed input; write deadlines to the connection under it.
type compressConn struct {
	net.Conn // the connection under compression (TLS or TCP)

	d   *deflater // nil while the connection waits for input
	pr  net.Conn  // decompressed input, from the decoder goroutine
	src *inflateSource
	err atomic.Pointer[error] // why the decoder stopped
}

func newCompressConn(nc net.Conn, pending []byte) *compressConn {
	pr, pw := net.Pipe()
	cc := &compressConn{Conn: nc, pr: pr, src: &inflateSource{r: nc, pre: pending}}
	go cc.decode(pw)
	return cc
}

// decode inflates the client's stream into pw until the stream or the
// connection ends.
func (cc *compressConn) decode(pw net.Conn) {
	defer pw.Close()
	defer cc.src.release()
	fr := inflate.NewReader(cc.src)
	defer fr.Close()
	out := make([]byte, 1024)
	for {
		n, err := fr.Read(out)
		if n > 0 {
			if _, werr := pw.Write(out[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			cc.err.Store(&err)
			return
		}
	}
}

// Read returns decompressed input. When the decoder has stopped it returns
// io.EOF for a client that closed the connection, else a *net.OpError (a
// connection error to the session) with the cause.
func (cc *compressConn) Read(p []byte) (int, error) {
	n, err := cc.pr.Read(p)
	if errors.Is(err, io.EOF) {
		err = cc.decodeErr()
	}
	return n, err
}

func (cc *compressConn) decodeErr() error {
	e := cc.err.Load()
	if e == nil {
		return io.EOF
	}
	err := *e
	var corrupt inflate.CorruptInputError
	if !errors.As(err, &corrupt) && cc.src.eof.Load() {
		return io.EOF // the client closed the connection
	}
	return &net.OpError{Op: "read", Net: "deflate", Addr: cc.RemoteAddr(), Err: fmt.Errorf("decompressing input: %w", err)}
}

// Write compresses p. The compressed bytes reach the client at flush,
// which the connection calls once per response batch (conn.flush), not
// at every buffer the writer hands over: a sync flush ends the deflate
// block, so flushing every 8 KiB would cost ratio and a flush per chunk.
// A small write with no compressor held (an IDLE update, the answer to a
// NOOP: the writer hands those over only when it flushes) goes out at once
// as a stored block instead: a fresh compressor would save next to
// nothing on it, and a change that wakes thousands of idle connections at
// once would otherwise want a 0.8 MiB compressor for each.
func (cc *compressConn) Write(p []byte) (int, error) {
	if cc.d == nil && len(p) <= maxStoredWrite {
		return cc.writeStored(p)
	}
	if cc.d == nil {
		cc.d = getDeflater()
		cc.d.out.Reset(cc.Conn)
		cc.d.fw.Reset(cc.d.out)
	}
	n, err := cc.d.fw.Write(p)
	if err != nil {
		return n, fmt.Errorf("compressing output: %w", err)
	}
	return n, nil
}

// flush sync-flushes the compressor, if one is held, to the connection:
// everything written so far reaches the client, and the stream is
// byte-aligned again.
func (cc *compressConn) flush() error {
	if cc.d == nil {
		return nil
	}
	err := cc.d.fw.Flush()
	if err == nil {
		err = cc.d.out.Flush()
	}
	if err != nil {
		return fmt.Errorf("compressing output: %w", err)
	}
	return nil
}

// maxStoredWrite is the largest write sent as a stored block.
const maxStoredWrite = 512

var storedBufPool = sync.Pool{New: func() any { b := make([]byte, 0, maxStoredWrite+10); return &b }}

// writeStored sends p as a stored DEFLATE block (RFC 1951 §3.2.4) and an
// empty one, the marker of a sync flush (some decoders, Go's among them,
// hand out a stored block's bytes only when the next block begins). The
// stream is byte-aligned before and after, as after every Write.
func (cc *compressConn) writeStored(p []byte) (int, error) {
	bp := storedBufPool.Get().(*[]byte)
	defer storedBufPool.Put(bp)
	n := len(p)
	b := append((*bp)[:0], 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
	b = append(b, p...)
	b = append(b, 0, 0, 0, 0xff, 0xff)
	*bp = b
	if _, err := cc.Conn.Write(b); err != nil {
		return 0, fmt.Errorf("writing a stored block: %w", err)
	}
	return n, nil
}

// release gives the compressor back to the pool; the stream goes on with
// another one at the next write (see the top of this file).
func (cc *compressConn) release() {
	if cc.d == nil {
		return
	}
	putDeflater(cc.d)
	cc.d = nil
}

// flush sends what is buffered: the writer's buffer and, under COMPRESS,
// what the compressor holds, so one sync flush ends each response batch.
func (c *conn) flush() error {
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if c.compress != nil {
		return c.compress.flush()
	}
	return nil
}

// SetReadDeadline applies to the decompressed input only: the decoder
// reads the socket without a deadline (its errors would be final).
func (cc *compressConn) SetReadDeadline(t time.Time) error {
	return cc.pr.SetReadDeadline(t)
}

func (cc *compressConn) SetDeadline(t time.Time) error {
	if err := cc.pr.SetReadDeadline(t); err != nil {
		return err
	}
	return cc.Conn.SetWriteDeadline(t)
}

// Close ends the decoder goroutine too: its read or its write fails. It
// may be called from another goroutine (Server.Shutdown), so it leaves the
// compressor alone: dropBuffers returns it.
func (cc *compressConn) Close() error {
	cc.pr.Close()
	return cc.Conn.Close()
}

// inflateSource feeds the decoder: the input read before compression
// began, then the connection. It is an io.ByteReader, so flate reads no
// more than it decodes and adds no buffer of its own. A waiting connection
// reads into the small array; after a read that filled its buffer it uses
// a pooled larger one until a read comes back short (an upload).
type inflateSource struct {
	r        io.Reader
	pre      []byte
	buf      []byte
	pos, end int
	small    [128]byte
	big      *[]byte
	eof      atomic.Bool // the connection ended (client closed it)
}

func (s *inflateSource) ReadByte() (byte, error) {
	if s.pos == s.end {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	b := s.buf[s.pos]
	s.pos++
	return b, nil
}

func (s *inflateSource) Read(p []byte) (int, error) {
	if s.pos == s.end {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.pos:s.end])
	s.pos += n
	return n, nil
}

func (s *inflateSource) fill() error {
	if len(s.pre) > 0 {
		s.buf, s.pos, s.end, s.pre = s.pre, 0, len(s.pre), nil
		return nil
	}
	buf := s.small[:]
	if s.end > 0 && s.end == len(s.buf) {
		if s.big == nil {
			s.big = inflateBufPool.Get().(*[]byte)
		}
		buf = *s.big
	} else {
		s.release()
	}
	n, err := s.r.Read(buf)
	s.buf, s.pos, s.end = buf, 0, n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if errors.Is(err, io.EOF) {
		s.eof.Store(true)
	}
	return err
}

// release returns the larger buffer to the pool.
func (s *inflateSource) release() {
	if s.big != nil {
		inflateBufPool.Put(s.big)
		s.big = nil
	}
}
