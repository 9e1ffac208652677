package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
)

// compress sends COMPRESS DEFLATE (RFC 4978) and, after its OK, reads and
// writes raw DEFLATE. bytesIn and bytesOut go on counting what crosses the
// connection (inside TLS), that is the compressed bytes. With stored, the
// client sends its commands as stored (uncompressed) DEFLATE blocks and
// holds no compressor (0.8 MiB each): for workloads with many connections
// that send little (idle-fanout), so that the load generator's memory
// does not limit the run.
func (c *client) compress(stored bool) error {
	if err := c.cmd(nil, "COMPRESS DEFLATE"); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	// What the reader holds past the OK is compressed already.
	pending, err := c.r.Peek(c.r.Buffered())
	if err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	in := io.MultiReader(bytes.NewReader(bytes.Clone(pending)), countingReader{c.nc, &c.bytesIn})
	c.r = bufio.NewReaderSize(flate.NewReader(in), 64<<10)
	if stored {
		c.w = bufio.NewWriterSize(storedBlocks{countingWriter{c.nc, &c.bytesOut}}, 4<<10)
		return nil
	}
	out := bufio.NewWriterSize(countingWriter{c.nc, &c.bytesOut}, 16<<10)
	fw, err := flate.NewWriter(out, flate.DefaultCompression)
	if err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	c.w = bufio.NewWriterSize(&flushingDeflater{fw: fw, out: out}, 64<<10)
	return nil
}

// flushingDeflater compresses every write and sends it at once (the client
// flushes its buffered writer at the end of each command).
type flushingDeflater struct {
	fw  *flate.Writer
	out *bufio.Writer
}

func (d *flushingDeflater) Write(p []byte) (int, error) {
	n, err := d.fw.Write(p)
	if err == nil {
		err = d.fw.Flush()
	}
	if err == nil {
		err = d.out.Flush()
	}
	return n, err
}

// storedBlocks writes each Write as stored DEFLATE blocks (RFC 1951
// §3.2.4: a header byte with BFINAL=0 and BTYPE=00, LEN, NLEN, the bytes)
// followed by an empty one, the marker of a sync flush: Go's decoder (the
// server's) hands out a stored block's bytes only when the next block
// begins, as zlib-based clients' sync flushes make happen.
type storedBlocks struct{ w io.Writer }

func (s storedBlocks) Write(p []byte) (int, error) {
	var b []byte
	for rest := p; len(rest) > 0; {
		k := min(len(rest), 0xffff)
		b = append(b, 0, byte(k), byte(k>>8), ^byte(k), ^byte(k>>8))
		b = append(b, rest[:k]...)
		rest = rest[k:]
	}
	b = append(b, 0, 0, 0, 0xff, 0xff)
	if _, err := s.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}
