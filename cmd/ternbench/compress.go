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
// connection (inside TLS), that is the compressed bytes.
func (c *client) compress() error {
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
