package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/minio/minio-go/v7"
)

// s3Object reads an object in windows: ranged GETs of s3WindowMin bytes
// at first, doubling (up to s3WindowMax) while reads go on where the
// last window ended, each read to its end so that its connection goes
// back to the pool. A read elsewhere starts a new window there (a small
// skip forward reads over the bytes instead). So a body read in small
// pieces costs a few GETs, and a read of one part of a large object
// costs about that part (minio's Object sends a GET per ReadAt, or
// streams the whole rest of the object after a Seek). A window that
// breaks (the store or a balancer closed a stream left idle while the
// IMAP client was slow) is asked for once more from where it broke.
type s3Object struct {
	s    *S3
	ctx  context.Context
	name string
	size int64

	mu     sync.Mutex // one ReadAt at a time
	body   io.ReadCloser
	pos    int64 // offset of body's next byte (or where the last window ended)
	end    int64 // where body's window ends
	window int64 // length of the last window; 0 before the first
}

const (
	s3WindowMin = 256 << 10
	s3WindowMax = 8 << 20
	// s3SkipMax is the largest skip forward read over rather than asked
	// for anew, and the most a window may have left unread when it is
	// read to its end to keep its connection.
	s3SkipMax = 64 << 10
)

func (o *s3Object) Size() int64 { return o.size }

func (o *s3Object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.leave()
	return nil
}

// ReadAt fills p from off, or returns io.EOF where the object ends
// first. Errors of the store are marked (s3Failed); an object shorter
// than its size is one (io.ErrUnexpectedEOF).
func (o *s3Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("s3 object: negative offset")
	}
	if off >= o.size {
		return 0, io.EOF
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	want := p[:min(int64(len(p)), o.size-off)]
	n, retried := 0, false
	for n < len(want) {
		k, broke, err := o.readWindow(want[n:], off+int64(n))
		n += k
		switch {
		case err == nil:
			retried = false
		case broke && !retried && o.ctx.Err() == nil:
			retried = true
		default:
			return n, s3Failed(err)
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readWindow reads into p from off what the window holding off has of
// it, starting that window first if need be; broke says the error came
// from a window's stream (not from asking for one).
func (o *s3Object) readWindow(p []byte, off int64) (n int, broke bool, err error) {
	if err := o.moveTo(off, len(p)); err != nil {
		return 0, false, err
	}
	n, err = io.ReadFull(o.body, p[:min(int64(len(p)), o.end-off)])
	o.pos += int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // nothing where the window should be
		}
		o.drop()
		return n, true, err
	}
	if o.pos == o.end {
		o.body.Close() // read to its end: the connection is kept
		o.body = nil
	}
	return n, false, nil
}

// moveTo makes the window's next byte the one at off, reading over a
// small skip or asking for a new window of at least need bytes.
func (o *s3Object) moveTo(off int64, need int) error {
	if o.body != nil && off >= o.pos && off-o.pos <= s3SkipMax && off < o.end {
		if _, err := io.CopyN(io.Discard, o.body, off-o.pos); err != nil {
			o.drop()
			return err
		}
		o.pos = off
		return nil
	}
	sequential := o.body == nil && off == o.pos && o.window > 0
	o.leave()
	length := int64(s3WindowMin)
	if sequential {
		length = min(2*o.window, s3WindowMax)
	}
	length = min(max(length, int64(need)), o.size-off)
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+length-1); err != nil {
		return err
	}
	body, _, _, err := minio.Core{Client: o.s.client}.GetObject(o.ctx, o.s.cfg.Bucket, o.name, opts)
	if err != nil {
		return fmt.Errorf("get %d bytes at %d: %w", length, off, err)
	}
	o.body, o.pos, o.end, o.window = body, off, off+length, length
	return nil
}

// leave ends the current window: read to its end when little is left
// (its connection is kept), dropped otherwise.
func (o *s3Object) leave() {
	if o.body == nil {
		return
	}
	if o.end-o.pos <= s3SkipMax {
		io.Copy(io.Discard, o.body)
	}
	o.drop()
}

// drop closes the current window as it is.
func (o *s3Object) drop() {
	if o.body != nil {
		o.body.Close()
		o.body = nil
	}
}
