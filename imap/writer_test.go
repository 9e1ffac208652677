package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"testing"
	"time"
)

// TestWriterNumbersAndDates: numbers and dates written into the buffer's
// free space come out whole when they straddle a flush, with a buffer
// smaller than a date.
func TestWriterNumbersAndDates(t *testing.T) {
	var out, want bytes.Buffer
	w := NewWriter(bufio.NewWriterSize(&out, 16))
	loc := time.FixedZone("", -(7*3600 + 30*60))
	for i := range 200 {
		n := uint64(i) * 104729 * uint64(i)
		if i == 199 {
			n = math.MaxUint64
		}
		w.Number(n)
		w.SP()
		w.Number32(uint32(n))
		d := time.Date(2026, time.Month(1+i%12), 1+i%28, i%24, i%60, i%60, 0, loc)
		w.Date(d)
		fmt.Fprintf(&want, "%d %d\"%s\"", n, uint32(n), d.Format("02-Jan-2006 15:04:05 -0700"))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Fatalf("wrote\n%s\nwant\n%s", out.String(), want.String())
	}
	if a := testing.AllocsPerRun(100, func() { w.Number(4294967295); w.Flush() }); a != 0 {
		t.Errorf("Number allocates %v times", a)
	}
}

// writeRecorder keeps each Write it gets, as the socket under a
// connection's buffer would see them.
type writeRecorder struct{ writes [][]byte }

func (r *writeRecorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

// TestLiteralBulk: a literal over BulkMin is offered to Bulk with its
// header still buffered. When Bulk declines (a body it cannot send
// itself) nothing has been written, and header, content and what
// follows leave in one write, not the header alone first; when it takes
// the literal, it finds the header in the buffer to send ahead of the
// content.
func TestLiteralBulk(t *testing.T) {
	content := bytes.Repeat([]byte("x"), BulkMin+1)
	header := fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n", len(content))

	var out writeRecorder
	w := NewWriter(bufio.NewWriterSize(&out, 2*BulkMin))
	w.Bulk = func(io.Reader, int64) (bool, error) {
		if len(out.writes) > 0 {
			t.Errorf("%d writes before Bulk", len(out.writes))
		}
		return false, nil
	}
	w.WriteString("* 1 FETCH (BODY[] ")
	if err := w.Literal(bytes.NewReader(content), int64(len(content)), false); err != nil {
		t.Fatal(err)
	}
	w.WriteString(")\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := header + string(content) + ")\r\n"; len(out.writes) != 1 || string(out.writes[0]) != want {
		t.Fatalf("declined: %d writes, want 1 of the whole response", len(out.writes))
	}

	var taken writeRecorder
	w = NewWriter(bufio.NewWriterSize(&taken, 2*BulkMin))
	w.Bulk = func(r io.Reader, n int64) (bool, error) {
		if w.Buffered() != len(header) {
			t.Errorf("Bulk called with %d bytes buffered, want the header's %d", w.Buffered(), len(header))
		}
		if err := w.Flush(); err != nil {
			return true, err
		}
		_, err := io.Copy(&taken, r)
		return true, err
	}
	w.WriteString("* 1 FETCH (BODY[] ")
	if err := w.Literal(bytes.NewReader(content), int64(len(content)), false); err != nil {
		t.Fatal(err)
	}
	if len(taken.writes) != 2 || string(taken.writes[0]) != header || !bytes.Equal(taken.writes[1], content) {
		t.Fatalf("taken: %d writes, want the header, then the content", len(taken.writes))
	}
}
