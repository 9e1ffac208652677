package sqlite

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

func benchAccount(b *testing.B) (*Store, store.Account) {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir(), Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, newUser(b, s)
}

// cpuMeter adds up the process's CPU time (user + system) over the timed
// parts of a benchmark and reports it per operation as cpu-ns/op: on a
// shared machine that is steadier than wall time, and it shows work saved
// where the wall time is mostly fsync.
type cpuMeter struct {
	total, start time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *cpuMeter) Start() { m.start = cpuTime() }
func (m *cpuMeter) Stop()  { m.total += cpuTime() - m.start }

func (m *cpuMeter) Report(b *testing.B) {
	b.ReportMetric(float64(m.total.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// measure runs op in a b.Loop, timed and metered.
func measure(b *testing.B, op func()) {
	var cpu cpuMeter
	b.ReportAllocs()
	for b.Loop() {
		cpu.Start()
		op()
		cpu.Stop()
	}
	cpu.Report(b)
}

func BenchmarkAppend(b *testing.B) {
	_, a := benchAccount(b)
	ctx := context.Background()
	msg := []store.NewMessage{{Body: storetest.Msg(1), Flags: []string{`\Seen`}}}
	b.SetBytes(int64(len(msg[0].Body)))
	measure(b, func() {
		if _, err := a.Append(ctx, "INBOX", msg); err != nil {
			b.Fatal(err)
		}
	})
}

// appendN appends n messages to a's INBOX, 500 per call, and returns
// its id.
func appendN(b *testing.B, a store.Account, n int) int64 {
	b.Helper()
	batch := make([]store.NewMessage, 500)
	for i := range batch {
		batch[i] = store.NewMessage{Body: storetest.Msg(i), Flags: []string{`\Seen`, "$Label"}}
	}
	var id int64
	for range n / len(batch) {
		res, err := a.Append(context.Background(), "INBOX", batch)
		if err != nil {
			b.Fatal(err)
		}
		id = res.MailboxID
	}
	return id
}

// BenchmarkIndexLoad10k: what loading a mailbox index reads from the
// store when a mailbox is first used (IndexDelta from nothing).
func BenchmarkIndexLoad10k(b *testing.B) {
	_, a := benchAccount(b)
	const n = 10000
	id := appendN(b, a, n)
	src := a.(store.IndexSource)
	measure(b, func() {
		d, err := src.IndexDelta(context.Background(), id, 0, 0)
		if err != nil || len(d.Rows) != n {
			b.Fatalf("%d rows, %v", len(d.Rows), err)
		}
	})
}

func BenchmarkFetchFlags10k(b *testing.B) {
	_, a := benchAccount(b)
	ctx := context.Background()
	const n = 10000
	id := appendN(b, a, n)
	uids := make([]uint32, n)
	for i := range uids {
		uids[i] = uint32(i + 1)
	}
	measure(b, func() {
		count := 0
		err := a.Fetch(ctx, id, uids, store.WantFlags, func(m *store.Message) error {
			count++
			return nil
		})
		if err != nil || count != n {
			b.Fatalf("fetched %d, %v", count, err)
		}
	})
}

// seedMailbox fills INBOX with n messages (500 distinct bodies appended,
// the rest copies of them, which is quick) and returns its id.
func seedMailbox(b *testing.B, a store.Account, n int) int64 {
	return seedMailboxWith(b, a, n, storetest.Msg)
}

// msgHeaders6k is a message with a header of about 6 KiB, as delivered
// mail with a long Received chain has.
func msgHeaders6k(n int) []byte {
	var h []byte
	for i := range 40 {
		h = fmt.Appendf(h, "Received: from host%d.example.org (host%d.example.org [192.0.2.%d]) by mx.example.org with ESMTPS id %dabc; Mon, 2 Feb 2026 10:00:00 +0100\r\n", i, i, i, n)
	}
	return append(h, storetest.Msg(n)...)
}

func seedMailboxWith(b *testing.B, a store.Account, n int, body func(int) []byte) int64 {
	b.Helper()
	ctx := context.Background()
	batch := make([]store.NewMessage, min(n, 500))
	for i := range batch {
		batch[i] = store.NewMessage{Body: body(i), Flags: []string{`\Seen`, "$Label"}}
	}
	res, err := a.Append(ctx, "INBOX", batch)
	if err != nil {
		b.Fatal(err)
	}
	id := res.MailboxID
	for have := len(batch); have < n; {
		k := min(have, n-have)
		uids := make([]uint32, k)
		for i := range uids {
			uids[i] = uint32(i + 1)
		}
		if _, err := a.Copy(ctx, id, uids, "INBOX"); err != nil {
			b.Fatal(err)
		}
		have += k
	}
	return id
}

func uidSeq(from, n, step int) []uint32 {
	uids := make([]uint32, n)
	for i := range uids {
		uids[i] = uint32(from + i*step)
	}
	return uids
}

// BenchmarkStoreFlags: +FLAGS then -FLAGS (one iteration is both) on 1,000
// UIDs of a 10,000-message mailbox: contiguous or every 7th UID, a system
// flag or a keyword.
func BenchmarkStoreFlags(b *testing.B) {
	for _, bc := range []struct {
		name string
		uids []uint32
		flag string
	}{
		{"sys/contiguous", uidSeq(4001, 1000, 1), `\Flagged`},
		{"sys/sparse", uidSeq(3, 1000, 7), `\Flagged`},
		{"keyword/contiguous", uidSeq(4001, 1000, 1), "$Todo"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, a := benchAccount(b)
			ctx := context.Background()
			id := seedMailbox(b, a, 10000)
			measure(b, func() {
				for _, op := range []store.FlagOp{store.FlagsAdd, store.FlagsRemove} {
					res, err := a.StoreFlags(ctx, id, bc.uids, op, []string{bc.flag}, 0, false)
					if err != nil || len(res.Updated) != len(bc.uids) {
						b.Fatalf("updated %d, %v", len(res.Updated), err)
					}
				}
			})
		})
	}
}

// BenchmarkExpunge1000 expunges 1,000 messages (copied in beforehand, not
// timed) from a mailbox.
func BenchmarkExpunge1000(b *testing.B) { benchExpunge(b, storetest.Msg) }

// BenchmarkExpunge1000Headers6k is BenchmarkExpunge1000 on messages with
// a 6 KiB header.
func BenchmarkExpunge1000Headers6k(b *testing.B) { benchExpunge(b, msgHeaders6k) }

func benchExpunge(b *testing.B, body func(int) []byte) {
	_, a := benchAccount(b)
	ctx := context.Background()
	id := seedMailboxWith(b, a, 10000, body)
	if err := a.CreateMailbox(ctx, "X", ""); err != nil {
		b.Fatal(err)
	}
	src := uidSeq(2001, 1000, 1)
	var cpu cpuMeter
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		res, err := a.Copy(ctx, id, src, "X")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu.Start()
		out, err := a.Expunge(ctx, res.DestMailboxID, res.DestUIDs, false)
		cpu.Stop()
		if err != nil || len(out) != len(src) {
			b.Fatalf("expunged %d, %v", len(out), err)
		}
	}
	cpu.Report(b)
}

// BenchmarkExpungeOneOf100k: EXPUNGE (all \Deleted) when one message of
// a 100,000-message mailbox is \Deleted (the STORE that marks it is not
// timed): what finding the \Deleted messages costs in a large mailbox.
func BenchmarkExpungeOneOf100k(b *testing.B) {
	_, a := benchAccount(b)
	ctx := context.Background()
	id := seedMailbox(b, a, 100000)
	next := uint32(1)
	var cpu cpuMeter
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if _, err := a.StoreFlags(ctx, id, []uint32{next}, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu.Start()
		out, err := a.Expunge(ctx, id, nil, true)
		cpu.Stop()
		if err != nil || len(out) != 1 || out[0] != next {
			b.Fatalf("expunged %v, %v", out, err)
		}
		next++
	}
	cpu.Report(b)
}

// BenchmarkCopy1000 copies 1,000 messages of a 10,000-message mailbox to
// another (expunged afterwards, not timed).
func BenchmarkCopy1000(b *testing.B) { benchCopy(b, storetest.Msg) }

// BenchmarkCopy1000Headers6k is BenchmarkCopy1000 on messages with a 6 KiB
// header.
func BenchmarkCopy1000Headers6k(b *testing.B) { benchCopy(b, msgHeaders6k) }

func benchCopy(b *testing.B, body func(int) []byte) {
	_, a := benchAccount(b)
	ctx := context.Background()
	id := seedMailboxWith(b, a, 10000, body)
	if err := a.CreateMailbox(ctx, "X", ""); err != nil {
		b.Fatal(err)
	}
	src := uidSeq(2001, 1000, 1)
	var cpu cpuMeter
	b.ReportAllocs()
	for b.Loop() {
		cpu.Start()
		res, err := a.Copy(ctx, id, src, "X")
		cpu.Stop()
		if err != nil || len(res.DestUIDs) != len(src) {
			b.Fatalf("copied %d, %v", len(res.DestUIDs), err)
		}
		b.StopTimer()
		if _, err := a.Expunge(ctx, res.DestMailboxID, res.DestUIDs, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	cpu.Report(b)
}

// BenchmarkChanges10 asks a 10,000-message mailbox what changed since a
// modseq after which 10 messages had their flags changed.
func BenchmarkChanges10(b *testing.B) {
	_, a := benchAccount(b)
	ctx := context.Background()
	id := seedMailbox(b, a, 10000)
	st, err := a.Status(ctx, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range uidSeq(100, 10, 500) {
		if _, err := a.StoreFlags(ctx, id, []uint32{u}, store.FlagsAdd, []string{`\Answered`}, 0, false); err != nil {
			b.Fatal(err)
		}
	}
	measure(b, func() {
		cs, err := a.Changes(ctx, id, st.HighestModSeq, st.UIDNext-1)
		if err != nil || len(cs.Changed) != 10 || len(cs.New) != 0 {
			b.Fatalf("changed %d, new %d, %v", len(cs.Changed), len(cs.New), err)
		}
	})
}

// BenchmarkAppendParallel appends one message at a time from 16 goroutines
// to one user's INBOX (several devices and LMTP delivery at once).
func BenchmarkAppendParallel(b *testing.B) {
	s, a := benchAccount(b)
	u := s.users[1]
	commits := u.commits.Load()
	ctx := context.Background()
	msg := []store.NewMessage{{Body: storetest.Msg(1), Flags: []string{`\Seen`}}}
	b.SetBytes(int64(len(msg[0].Body)))
	b.SetParallelism(8)
	b.ReportAllocs()
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Append(ctx, "INBOX", msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/float64(u.commits.Load()-commits), "appends/commit")
}

// BenchmarkOpenBodyRandom reads whole bodies of random messages of a
// 10,000-message mailbox from 8 goroutines, as bench/compare.sh's read
// workload does over IMAP (most bodies small enough to live in mail.db).
func BenchmarkOpenBodyRandom(b *testing.B) {
	_, a := benchAccount(b)
	ctx := context.Background()
	const n = 10000
	pad := strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n", 70)
	for i := 0; i < n; i += 100 {
		var msgs []store.NewMessage
		for j := range 100 {
			msgs = append(msgs, store.NewMessage{Body: fmt.Appendf(nil, "Subject: m%d\r\nFrom: a@example.org\r\n\r\n%s", i+j, pad)})
		}
		if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
			b.Fatal(err)
		}
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var seed atomic.Uint64
	c0 := cpuTime()
	b.SetParallelism(4) // 8 goroutines on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 1))
		buf := make([]byte, 8192)
		for pb.Next() {
			body, err := a.OpenBody(ctx, inbox.ID, 1+r.Uint32N(n))
			if err != nil {
				b.Fatal(err)
			}
			for off := int64(0); off < body.Size(); off += int64(len(buf)) {
				if _, err := body.ReadAt(buf, off); err != nil && err != io.EOF {
					b.Fatal(err)
				}
			}
			body.Close()
		}
	})
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkSearchQueued: SEARCH FROM in a mailbox of 100 indexed
// messages while the account's indexing queue holds 5,000 new ones
// elsewhere (a bulk import, or mail arriving faster than the indexer
// keeps up); each search lists the queue first.
func BenchmarkSearchQueued(b *testing.B) {
	_, acct := benchAccount(b)
	a := acct.(*account)
	ctx := context.Background()
	if err := a.CreateMailbox(ctx, "Small", ""); err != nil {
		b.Fatal(err)
	}
	batch := make([]store.NewMessage, 100)
	for i := range batch {
		batch[i] = store.NewMessage{Body: []byte(fmt.Sprintf("From: Person %d <p%d@example.org>\r\nSubject: note %d\r\n\r\nbody %d\r\n", i, i, i, i))}
	}
	if _, err := a.Append(ctx, "Small", batch); err != nil {
		b.Fatal(err)
	}
	if _, _, err := a.indexPending(ctx, 1000, 0); err != nil {
		b.Fatal(err)
	}
	for range 50 {
		if _, err := a.Append(ctx, "INBOX", batch); err != nil {
			b.Fatal(err)
		}
	}
	small, err := a.Mailbox(ctx, "Small")
	if err != nil {
		b.Fatal(err)
	}
	qs := []store.TextQuery{{Fields: store.TextFrom, Needle: []byte("person 42")}}
	measure(b, func() {
		res, err := a.SearchText(ctx, small.ID, qs)
		if err != nil || len(res.Hits[0]) != 1 || len(res.Pending) != 0 {
			b.Fatalf("%+v %v", res, err)
		}
	})
}

// BenchmarkIndexBatch: the background indexer's cost per message when it
// takes the queue a few messages at a time (chasing mail that keeps
// arriving) and a batch at a time; each message about 5 KB of text.
// cpu-ns/msg is the process's CPU per message indexed.
func BenchmarkIndexBatch(b *testing.B) {
	para := strings.Repeat("The quarterly figures for the northern region arrived late again this week. ", 12) + "\r\n"
	for _, n := range []int{4, 32} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			_, acct := benchAccount(b)
			a := acct.(*account)
			ctx := context.Background()
			msgs := make([]store.NewMessage, n)
			var cpu time.Duration
			i := 0
			for b.Loop() {
				b.StopTimer()
				for k := range msgs {
					i++
					msgs[k] = store.NewMessage{Body: fmt.Appendf(nil, "From: Person %d <p%d@example.org>\r\nSubject: report %d\r\n\r\n%s%s%s%s%s", i, i%50, i, para, para, para, para, para)}
				}
				if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
					b.Fatal(err)
				}
				c0 := cpuTime()
				b.StartTimer()
				if got, _, err := a.indexPending(ctx, n, 0); err != nil || got != n {
					b.Fatalf("indexed %d (%v), want %d", got, err, n)
				}
				b.StopTimer()
				cpu += cpuTime() - c0
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/msg")
		})
	}
}
