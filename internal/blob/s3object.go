package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
)

// s3Object reads an object in windows: ranged GETs, the first (sent by
// Open) of s3WindowMin bytes from the start, one that jumps elsewhere of
// s3SkipMax at least, each doubling (up to s3WindowMax) while reads go on
// where the last window ended. A window is read to its end, or drained
// in the background when little of it is left, so that its connection
// goes back to the pool. A small skip forward reads over the bytes. So a
// body read in small pieces costs a few GETs, and a read of one part of
// a large object about that part (minio's Object sends a GET per ReadAt,
// or streams the whole rest of the object after a Seek). A window whose
// stream breaks (the store or a balancer closed a stream left idle while
// the IMAP client was slow) is asked for once more from where it broke.
type s3Object struct {
	s    *S3
	ctx  context.Context
	key  string
	size int64

	mu     sync.Mutex // one ReadAt at a time
	body   io.ReadCloser
	pos    int64 // offset of body's next byte (or where the last window ended)
	end    int64 // where body's window ends
	window int64 // length of the last window
	closed bool
}

const (
	s3WindowMin = 256 << 10
	s3WindowMax = 8 << 20
	// s3SkipMax is the largest skip forward read over rather than asked
	// for anew, the least a window that jumps asks for, and the most a
	// window may have left unread when it is drained to keep its
	// connection.
	s3SkipMax = 64 << 10
)

// openS3Object sends the first window's GET; the object's size comes
// from its Content-Range. An empty object has no first window.
func openS3Object(ctx context.Context, s *S3, key string) (*s3Object, error) {
	o := &s3Object{s: s, ctx: ctx, key: key, size: -1}
	err := o.get(0, s3WindowMin)
	if errorResponse(err).StatusCode == http.StatusRequestedRangeNotSatisfiable {
		size, serr := s.Stat(ctx, key) // an empty object has no byte 0
		if serr != nil {
			return nil, serr
		}
		o.size = size
		return o, nil
	}
	if err != nil {
		return nil, err
	}
	return o, nil
}

func (o *s3Object) Size() int64 { return o.size }

func (o *s3Object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.leave()
	o.closed = true
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
	if o.closed {
		return 0, errors.New("s3 object: read after Close")
	}
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
			return n, s3Failed(fmt.Errorf("read blob %s at %d: %w", o.key, off+int64(n), err))
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readWindow reads into p from off what the window holding off has of
// it, asking for that window first if need be; broke says the error
// came from a window's stream (not from asking for one).
func (o *s3Object) readWindow(p []byte, off int64) (n int, broke bool, err error) {
	if broke, err := o.moveTo(off, len(p)); err != nil {
		return 0, broke, err
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
func (o *s3Object) moveTo(off int64, need int) (broke bool, err error) {
	if o.body != nil && off == o.pos {
		return false, nil
	}
	if o.body != nil && off > o.pos && off-o.pos <= s3SkipMax && off < o.end {
		k, err := io.CopyN(io.Discard, o.body, off-o.pos)
		o.pos += k
		if err != nil {
			o.drop()
			return true, err
		}
		return false, nil
	}
	length := int64(s3SkipMax)
	if o.body == nil && off == o.pos {
		length = 2 * o.window // on where the last window ended (or broke)
	}
	o.leave()
	return false, o.get(off, min(max(length, int64(need), s3SkipMax), s3WindowMax))
}

// get asks for the window of length bytes at off (within the object once
// its size is known) and checks where the answer starts: a store that
// ignores Range answers 200 with the whole object, usable only from 0.
func (o *s3Object) get(off, length int64) error {
	if o.size >= 0 {
		length = min(length, o.size-off)
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+length-1); err != nil {
		return err
	}
	body, info, header, err := minio.Core{Client: o.s.client}.GetObject(o.ctx, o.s.cfg.Bucket, o.s.name(o.key), opts)
	if err != nil {
		return fmt.Errorf("get %d bytes at %d: %w", length, off, err)
	}
	start, total, ok := contentRange(header.Get("Content-Range"))
	switch {
	case ok && start == off:
	case !ok && off == 0: // the whole object
		start, total = 0, info.Size
	default:
		body.Close()
		return fmt.Errorf("get %d bytes at %d: the store answered with %q", length, off, header.Get("Content-Range"))
	}
	if o.size < 0 {
		o.size = total
	}
	o.body, o.pos, o.end, o.window = body, off, off+min(length, o.size-off), length
	return nil
}

// contentRange reads "bytes START-END/TOTAL".
func contentRange(v string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	span, size, found2 := strings.Cut(rest, "/")
	first, _, found3 := strings.Cut(span, "-")
	if !found || !found2 || !found3 {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	total, err2 := strconv.ParseInt(size, 10, 64)
	return start, total, err1 == nil && err2 == nil
}

// leave ends the current window: drained in the background when little
// is left (its connection is kept; a stalled store ends the drain after
// its timeout), dropped otherwise.
func (o *s3Object) leave() {
	if o.body == nil {
		return
	}
	if o.end-o.pos <= s3SkipMax {
		go func(b io.ReadCloser) {
			io.Copy(io.Discard, b)
			b.Close()
		}(o.body)
		o.body = nil
		return
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
