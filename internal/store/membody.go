package store

import "bytes"

// MemBody is a message held in memory as a Body: a reader of its own
// over bytes that may be shared (it never writes them), which it lends
// rather than copies (ByteRange, message.ByteRanger).
type MemBody struct {
	*bytes.Reader
	data, parts []byte
}

// NewMemBody returns a Body reading data, with parts as its part tree
// (nil: none).
func NewMemBody(data, parts []byte) *MemBody {
	return &MemBody{Reader: bytes.NewReader(data), data: data, parts: parts}
}

// Close does nothing: there is nothing to give back.
func (b *MemBody) Close() error { return nil }

// Parts returns the part tree, capped so that an append cannot write
// into the shared array.
func (b *MemBody) Parts() []byte { return b.parts[:len(b.parts):len(b.parts)] }

// Bytes returns the message's bytes, capped as Parts.
func (b *MemBody) Bytes() []byte { return b.data[:len(b.data):len(b.data)] }

// ByteRange lends data[from:to] (message.ByteRanger), or reports false
// for a range outside the message.
func (b *MemBody) ByteRange(from, to int64) ([]byte, bool) {
	if from < 0 || to < from || to > int64(len(b.data)) {
		return nil, false
	}
	return b.data[from:to:to], true
}
