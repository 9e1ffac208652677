package index

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// BenchmarkIndexMemory builds mailbox indexes of 10k, 100k and 1M
// messages (as a load does) and reports the heap they hold per message.
// Run: go test -run '^$' -bench IndexMemory -benchtime 1x ./internal/index/
func BenchmarkIndexMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				before := heapInUse()
				box := syntheticBox(n)
				after := heapInUse()
				b.ReportMetric(float64(after-before)/float64(n), "bytes/msg")
				b.ReportMetric(float64(after-before)/(1<<20), "MiB")
				runtime.KeepAlive(box)
			}
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// syntheticBox is a loaded index of n messages with a realistic mix of
// flags (mostly \Seen, some keywords).
func syntheticBox(n int) *Mailbox {
	flagMix := [][]string{{`\Seen`}, {`\Seen`}, {`\Seen`, `\Answered`}, {}, {`\Flagged`, `\Seen`, "$label1"}}
	d := store.IndexDelta{Head: store.MailboxHead{UIDNext: uint32(n) + 1, HighestModSeq: uint64(n)}}
	b := &Mailbox{}
	b.cols.grow(n)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600))
	for i := range n {
		r := store.IndexRow{
			UID: uint32(i + 1), ModSeq: uint64(i + 1), Flags: flagMix[i%len(flagMix)], Size: 4000 + int64(i%5000),
			InternalDate: t0.Add(time.Duration(i) * time.Minute), SaveDate: t0, SentDate: t0.Add(-time.Hour),
			EmailID: fmt.Sprintf("M%016x", i*7919), ThreadID: fmt.Sprintf("T%016x", i/3),
		}
		set := b.sets.id(r.Flags)
		b.cols.appendRow(&r, set)
		b.count.add(b.sets.bit(set), r.Size, 1)
	}
	b.head, b.loaded = d.Head, true
	return b
}
