package server_test

import (
	"bufio"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleConnMemory reports what one more idle IMAP connection
// (logged in, INBOX selected, in IDLE) costs the server's Go runtime:
// live heap plus goroutine stacks a second after they open, after a GC,
// between 45 and 90 open connections, per connection. It is steadier
// than the PSS slope of bench/compare.sh's idle-fanout, which includes
// whatever garbage the heap holds at that moment. The client side of each connection (its socket,
// no buffers or goroutines) is in the same process and counted too.
func BenchmarkIdleConnMemory(b *testing.B) {
	addr := benchServer(b, 10)
	open := func(n int) []net.Conn {
		conns := make([]net.Conn, 0, n)
		for range n {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { nc.Close() })
			r := bufio.NewReaderSize(nc, 4096)
			expect := func(cmd, prefix string) {
				if cmd != "" {
					if _, err := nc.Write([]byte(cmd)); err != nil {
						b.Fatal(err)
					}
				}
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						b.Fatal(err)
					}
					if strings.HasPrefix(l, prefix) {
						return
					}
				}
			}
			expect("", "* OK")
			expect("a LOGIN bench pw\r\n", "a OK")
			expect("b SELECT INBOX\r\n", "b OK")
			expect("c IDLE\r\n", "+ ")
			conns = append(conns, nc)
		}
		return conns
	}
	// An idle connection is one that has waited a while: after parkAfter
	// (200 ms) its session waits on a new goroutine's small stack
	// (park.go). compare.sh's idle-fanout samples after a second as well.
	live := func() (heap, stack uint64) {
		time.Sleep(time.Second)
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, m.StackInuse
	}
	const half = 45
	var heap, stack float64
	for b.Loop() {
		first := open(half)
		h0, s0 := live()
		second := open(half)
		h1, s1 := live()
		heap, stack = (float64(h1)-float64(h0))/half, (float64(s1)-float64(s0))/half
		for _, nc := range append(first, second...) {
			nc.Close()
		}
	}
	b.ReportMetric(heap+stack, "B/idle-conn")
	b.ReportMetric(heap, "heap-B/idle-conn")
	b.ReportMetric(stack, "stack-B/idle-conn")
}
