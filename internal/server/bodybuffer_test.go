package server

import (
	"bufio"
	"net"
	"testing"

	"github.com/tern-imap/tern/imap"
)

// TestBodyBuffersBounded: FETCHes of bodies take the large output buffer
// only while one of bodyBuffers is free (the others keep 64 KiB), never
// with output already buffered, and give it back with their buffers.
func TestBodyBuffersBounded(t *testing.T) {
	if n := len(bodySlots); n != 0 {
		t.Fatalf("%d body buffers held before the test", n)
	}
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
	for range bodyBuffers {
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
	for _, c := range append(held[1:], extra, busy) {
		c.putWriter()
	}
	if n := len(bodySlots); n != 0 {
		t.Fatalf("%d body buffers still held after all were given back", n)
	}
}
