package sqlite

import (
	"sync"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// A bodyBuffer holds the bytes of a body kept in mail.db while OpenBody
// reads it and until the body is closed. Its arrays are reused: a FETCH of
// a small message otherwise left two allocations of the message's size
// behind (the row's copy and its decompression), about 10 KB of garbage
// per FETCH of everyday mail.
type bodyBuffer struct {
	sqldb.Buffer
}

// bodyBufferMax is the largest array kept for reuse (inline bodies are
// at most store.inline_body_max, 16 KiB by default).
const bodyBufferMax = 256 << 10

var bodyBuffers = sync.Pool{New: func() any { return new(bodyBuffer) }}

func newBodyBuffer() *bodyBuffer { return bodyBuffers.Get().(*bodyBuffer) }

// release hands the buffer back; its bytes must not be used after.
func (b *bodyBuffer) release() {
	if cap(b.B) > bodyBufferMax {
		return
	}
	b.B, b.Null = b.B[:0], false
	bodyBuffers.Put(b)
}

// unpack returns a buffer of the body b holds, a bodies row's data of
// kind: b itself when it is stored as it is, else a new buffer of its
// decompression (want bytes; b is released). On error nothing is kept.
func (b *bodyBuffer) unpack(kind int, want int64) (*bodyBuffer, error) {
	if kind&bodyCompressed == 0 {
		return b, nil
	}
	defer b.release()
	out := newBodyBuffer()
	dec, err := decodeBody(out.B, b.B, want)
	if err != nil {
		out.release()
		return nil, err
	}
	out.B = dec
	return out, nil
}
