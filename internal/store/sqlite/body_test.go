package sqlite

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestSplitBodyReadAt: a body read from its stored header and the rest
// gives, at every offset and length, what the two bytes joined give.
func TestSplitBodyReadAt(t *testing.T) {
	for _, c := range []struct{ head, rest string }{
		{"Subject: x\r\n\r\n", "body\r\n"},
		{"", "whole message\r\n"},
		{"Subject: only a header\r\n\r\n", ""},
		{"", ""},
	} {
		b := &splitBody{head: []byte(c.head), rest: []byte(c.rest)}
		whole := bytes.NewReader([]byte(c.head + c.rest))
		if b.Size() != whole.Size() {
			t.Fatalf("%q+%q: Size %d, want %d", c.head, c.rest, b.Size(), whole.Size())
		}
		for off := int64(0); off <= whole.Size()+1; off++ {
			for n := 0; n <= int(whole.Size())+2; n++ {
				got, want := make([]byte, n), make([]byte, n)
				gn, gerr := b.ReadAt(got, off)
				wn, werr := whole.ReadAt(want, off)
				if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (gerr == nil) != (werr == nil) {
					t.Fatalf("%q+%q ReadAt(%d bytes, %d) = %d %q %v, want %d %q %v",
						c.head, c.rest, n, off, gn, got[:gn], gerr, wn, want[:wn], werr)
				}
				if gerr != nil && !errors.Is(gerr, io.EOF) {
					t.Fatalf("ReadAt error %v, want io.EOF", gerr)
				}
			}
		}
	}
	if _, err := (&splitBody{}).ReadAt(make([]byte, 1), -1); err == nil {
		t.Fatal("negative offset read without error")
	}
}
