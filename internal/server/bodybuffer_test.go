package server

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tern-imap/tern/imap"
)

// TestBodyBuffersBounded: FETCHes of bodies take the large output buffer
// only while one of bodyBuffers is free (the others keep 64 KiB), never
// with output already buffered, and give it back with their buffers.
func TestBodyBuffersBounded(t *testing.T) {
	free := bodyBuffers - len(bodySlots) // (a connection of an earlier test may still hold one)
	newConn := func() *conn {
		nc, peer := net.Pipe()
		t.Cleanup(func() { nc.Close(); peer.Close() })
		c := &conn{nc: nc, w: imap.NewWriter(nil)}
		c.bw = bwPool.Get().(*bufio.Writer)
		c.bw.Reset(nc)
		c.w.Writer = c.bw
		return c
	}
	var held []*conn
	for range free {
		c := newConn()
		c.useBodyBuffer()
		if !c.bodyBuffer || c.bw.Size() != bodyBufferSize || c.w.Writer != c.bw {
			t.Fatalf("connection %d: no body buffer (size %d)", len(held), c.bw.Size())
		}
		held = append(held, c)
	}
	extra := newConn()
	extra.useBodyBuffer()
	if extra.bodyBuffer || extra.bw.Size() != writeBufferSize {
		t.Fatalf("a body buffer beyond the %d allowed", bodyBuffers)
	}
	held[0].putWriter()
	busy := newConn()
	busy.w.WriteString("* 1 EXISTS\r\n")
	busy.useBodyBuffer()
	if busy.bodyBuffer {
		t.Fatal("a body buffer taken over buffered output")
	}
	extra.useBodyBuffer()
	if !extra.bodyBuffer {
		t.Fatal("no body buffer once one was given back")
	}
	// A write that failed before (kept by bufio) is not swapped away: the
	// session must still see it.
	extra.putWriter()
	failed := newConn()
	failed.bw.Reset(&trickleConn{stalled: true})
	failed.w.Write(make([]byte, writeBufferSize+1))
	failed.useBodyBuffer()
	if failed.bodyBuffer || failed.bw.Flush() == nil {
		t.Fatal("an earlier write's error dropped with the swap to a body buffer")
	}
	for _, c := range append(held[1:], busy, failed) {
		c.putWriter()
	}
	if n := bodyBuffers - len(bodySlots); n != free {
		t.Fatalf("%d body buffers free after all were given back, %d before", n, free)
	}
}

// trickleConn takes at most chunk bytes per Write and then reports the
// write deadline passed, as a slow reader's socket does; stalled takes
// nothing.
type trickleConn struct {
	net.Conn
	chunk, got, writes int
	stalled            bool
}

func (c *trickleConn) SetWriteDeadline(time.Time) error { return nil }

func (c *trickleConn) Write(p []byte) (int, error) {
	c.writes++
	if c.stalled {
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	n := min(len(p), c.chunk)
	c.got += n
	if n < len(p) {
		return n, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	return n, nil
}

// TestWriteTimeoutProgress: a write that times out after sending some
// bytes goes on with a fresh deadline (a 1 MiB body buffer to a slow but
// reading client); one that sends nothing within the timeout fails.
func TestWriteTimeoutProgress(t *testing.T) {
	slow := &trickleConn{chunk: 64 << 10}
	n, err := (&writeTimeoutConn{Conn: slow, timeout: time.Second}).Write(make([]byte, 1<<20))
	if err != nil || n != 1<<20 || slow.got != 1<<20 || slow.writes != 16 {
		t.Fatalf("slow reader: wrote %d (%d in %d writes), %v; want all 1 MiB", n, slow.got, slow.writes, err)
	}
	stuck := &trickleConn{stalled: true}
	if n, err := (&writeTimeoutConn{Conn: stuck, timeout: time.Second}).Write(make([]byte, 100)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || stuck.writes != 1 {
		t.Fatalf("stalled reader: wrote %d in %d writes, %v; want the timeout", n, stuck.writes, err)
	}
}
