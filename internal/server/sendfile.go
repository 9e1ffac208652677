package server

import (
	"fmt"
	"io"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// sendfileChunk is how much one sendfile call may send before the write
// deadline is renewed: a slow reader gets WriteTimeout per chunk, as it
// gets per buffered write, not for the whole body.
const sendfileChunk = 256 << 10

// useSendfile sets the writer up to let the kernel copy body files to the
// socket: only on plaintext TCP, where the bytes go out as they are (not
// under TLS, not under COMPRESS).
func (c *conn) useSendfile() {
	c.w.Bulk = nil
	if c.isTLS || c.tcp == nil || c.compress != nil {
		return
	}
	c.w.Bulk = c.sendfile
}

// sendfile sends n bytes of r from the body file under it, when r is a
// section of a file-backed body (imap.Writer.Bulk).
func (c *conn) sendfile(r io.Reader, n int64) (bool, error) {
	sr, ok := r.(*io.SectionReader)
	if !ok {
		return false, nil
	}
	outer, base, _ := sr.Outer()
	fb, ok := outer.(store.FileBody)
	if !ok {
		return false, nil
	}
	pos, err := sr.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, nil
	}
	f := fb.OSFile()
	if _, err := f.Seek(base+pos, io.SeekStart); err != nil {
		return false, nil
	}
	if err := c.w.Flush(); err != nil { // what precedes the literal's content
		return true, fmt.Errorf("sendfile: %w", err)
	}
	for sent := int64(0); sent < n; {
		if err := c.tcp.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout)); err != nil {
			return true, fmt.Errorf("sendfile: %w", err)
		}
		k, err := c.tcp.ReadFrom(&io.LimitedReader{R: f, N: min(n-sent, sendfileChunk)})
		sent += k
		c.metered.sent(k)
		if err == nil && k == 0 {
			err = io.ErrUnexpectedEOF // the file is shorter than its section
		}
		if err != nil {
			return true, fmt.Errorf("sendfile after %d of %d bytes: %w", sent, n, err)
		}
	}
	return true, nil
}
