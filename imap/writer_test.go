package imap

import (
	"bufio"
	"bytes"
	"fmt"
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
