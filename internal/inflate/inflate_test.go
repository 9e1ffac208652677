package inflate

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"
	"time"
)

// TestBlockBytesAtBlockEnd: the bytes of a non-final block that is not
// followed by a sync flush marker are readable as soon as the block ends,
// while the stream goes on (compress/flate holds them back).
func TestBlockBytesAtBlockEnd(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	r := NewReader(pr)
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 100)
		n, _ := r.Read(b)
		got <- string(b[:n])
	}()
	// A stored block holding "a NOOP\r\n", BFINAL=0, and nothing after it.
	msg := "a NOOP\r\n"
	go pw.Write(append([]byte{0, byte(len(msg)), 0, ^byte(len(msg)), 0xff}, msg...))
	select {
	case s := <-got:
		if s != msg {
			t.Fatalf("read %q, want %q", s, msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the block's bytes were not handed out at its end")
	}
}

// TestRoundTrip: streams written by compress/flate, sync-flushed along the
// way, read back exactly.
func TestRoundTrip(t *testing.T) {
	var want, stream bytes.Buffer
	fw, _ := flate.NewWriter(&stream, 6)
	for i := range 2000 {
		line := bytes.Repeat([]byte{byte('a' + i%26)}, i%300)
		want.Write(line)
		fw.Write(line)
		if i%7 == 0 {
			fw.Flush()
		}
	}
	fw.Close()
	got, err := io.ReadAll(NewReader(&stream))
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("round trip: %d bytes (want %d), %v", len(got), want.Len(), err)
	}
}
