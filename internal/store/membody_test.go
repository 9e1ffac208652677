package store

import (
	"io"
	"testing"
)

func TestMemBody(t *testing.T) {
	data := []byte("Subject: x\r\n\r\nbody\r\n")
	parts := []byte{1, 2, 3}
	b := NewMemBody(data, parts)
	if b.Size() != int64(len(data)) {
		t.Fatalf("Size = %d, want %d", b.Size(), len(data))
	}
	got := make([]byte, 4)
	if n, err := b.ReadAt(got, 14); n != 4 || err != nil || string(got) != "body" {
		t.Fatalf("ReadAt(14) = %d, %v, %q", n, err, got)
	}
	if _, err := b.ReadAt(got, int64(len(data))); err != io.EOF {
		t.Fatalf("ReadAt past the end: %v, want EOF", err)
	}
	for _, r := range []struct {
		from, to int64
		ok       bool
	}{{0, 0, true}, {0, 12, true}, {14, int64(len(data)), true}, {-1, 2, false}, {5, 4, false}, {0, int64(len(data)) + 1, false}} {
		s, ok := b.ByteRange(r.from, r.to)
		if ok != r.ok || (ok && string(s) != string(data[r.from:r.to])) {
			t.Errorf("ByteRange(%d, %d) = %q, %v", r.from, r.to, s, ok)
		}
		if ok && cap(s) != len(s) {
			t.Errorf("ByteRange(%d, %d): cap %d > len %d, an append would write the shared bytes", r.from, r.to, cap(s), len(s))
		}
	}
	// What it lends cannot be appended into: the bytes are shared.
	_ = append(b.Parts(), 9)
	_ = append(b.Bytes(), 'X')
	if parts[0] != 1 || len(parts) != 3 || string(data) != "Subject: x\r\n\r\nbody\r\n" || cap(b.Bytes()) != len(data) {
		t.Fatalf("shared bytes changed: %v %q", parts, data)
	}
	// Each body reads on its own.
	c := NewMemBody(data, parts)
	if n, _ := c.Read(got); n != 4 || string(got) != "Subj" {
		t.Fatalf("second body's Read = %q", got[:n])
	}
	if n, _ := b.Read(got); n != 4 || string(got) != "Subj" {
		t.Fatalf("first body's Read after the second's = %q", got[:n])
	}
}
