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

// TestLongDistances: matches reaching back almost the whole 32 KiB window,
// across the window's growth from minHist and its wrap-around.
func TestLongDistances(t *testing.T) {
	block := make([]byte, 30<<10)
	x := uint32(1)
	for i := range block {
		x = x*1664525 + 1013904223
		block[i] = byte(x >> 24)
	}
	var want, stream bytes.Buffer
	fw, _ := flate.NewWriter(&stream, 9)
	for i := range 6 {
		want.Write(block)
		fw.Write(block)
		want.WriteString("sep")
		fw.Write([]byte("sep"))
		if i%2 == 0 {
			fw.Flush()
		}
	}
	fw.Close()
	if stream.Len() > 2*len(block) {
		t.Fatalf("the test data did not compress by back references: %d bytes", stream.Len())
	}
	r := NewReader(bytes.NewReader(stream.Bytes()))
	var got bytes.Buffer
	buf := make([]byte, 777) // odd reads, as a bufio.Reader's are
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("got %d bytes, want %d (equal prefix %d)", got.Len(), want.Len(), commonPrefix(got.Bytes(), want.Bytes()))
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestSmallWindowWhileLittleArrived: a stream that carried a few commands
// holds a window of minHist bytes, not 32 KiB.
func TestSmallWindowWhileLittleArrived(t *testing.T) {
	var stream bytes.Buffer
	fw, _ := flate.NewWriter(&stream, 6)
	fw.Write([]byte("a SELECT INBOX\r\nb IDLE\r\n"))
	fw.Flush()
	r := NewReader(&stream).(*decompressor)
	buf := make([]byte, 100)
	if n, err := r.Read(buf); n == 0 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if len(r.dict.hist) != minHist {
		t.Fatalf("window of %d bytes", len(r.dict.hist))
	}
}
