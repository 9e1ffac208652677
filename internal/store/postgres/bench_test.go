package postgres

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// The benchmarks mirror internal/store/sqlite's of the same names, on a
// private PostgreSQL server (TERN_PGTEST_FSYNC=on for durable commits,
// as the sqlite ones have). The server runs in other processes, so wall
// time per operation is the figure; the client's CPU is not the cost.

func benchAccount(b *testing.B) store.Account {
	return benchAccountWith(b, Options{})
}

// listeningRelaxed are the Options of a node's Store under store.fsync =
// "optimized": it LISTENs for other nodes' changes, and flag changes
// commit relaxed, their change signals sent in batches (signals.go).
var listeningRelaxed = Options{Notifier: &storetest.Recorder{}, RelaxedCommits: true}

// benchStore opens a Store with opts on a new database, closed with b.
func benchStore(b *testing.B, opts Options) *Store {
	b.Helper()
	opts.Logger, opts.MaxConns = quietLogger(), 16
	s, err := Open(context.Background(), pgtest.NewDatabase(b), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchAccountWith is benchAccount for a Store opened with opts.
func benchAccountWith(b *testing.B, opts Options) store.Account {
	b.Helper()
	ctx := context.Background()
	s := benchStore(b, opts)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		b.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// seedMailbox fills INBOX with n messages (500 appended, the rest
// copies) and returns its id.
func seedMailbox(b *testing.B, a store.Account, n int) int64 {
	b.Helper()
	ctx := context.Background()
	batch := make([]store.NewMessage, min(n, 500))
	for i := range batch {
		batch[i] = store.NewMessage{Body: storetest.Msg(i), Flags: []string{`\Seen`, "$Label"}}
	}
	res, err := a.Append(ctx, "INBOX", batch)
	if err != nil {
		b.Fatal(err)
	}
	for have := len(batch); have < n; {
		k := min(have, n-have)
		uids := make([]uint32, k)
		for i := range uids {
			uids[i] = uint32(i + 1)
		}
		if _, err := a.Copy(ctx, res.MailboxID, uids, "INBOX"); err != nil {
			b.Fatal(err)
		}
		have += k
	}
	return res.MailboxID
}

// reportServerCPU starts counting the PostgreSQL server's CPU and this
// process's; the function it returns reports them per operation
// (pg-cpu-ns/op, client-cpu-ns/op: the store's side, a node's cost).
func reportServerCPU(b *testing.B) func() {
	b.Helper()
	cpu0, err := pgtest.ServerCPU()
	if err != nil {
		b.Fatal(err)
	}
	own0 := processCPU(b)
	return func() {
		cpu1, err := pgtest.ServerCPU()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "pg-cpu-ns/op")
		b.ReportMetric(float64((processCPU(b)-own0).Nanoseconds())/float64(b.N), "client-cpu-ns/op")
	}
}

// processCPU is the CPU this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func uidRange(from, n int) []uint32 {
	uids := make([]uint32, n)
	for i := range uids {
		uids[i] = uint32(from + i)
	}
	return uids
}

// BenchmarkAppend: one message per APPEND; pg-cpu-ns/op is the
// server's CPU.
func BenchmarkAppend(b *testing.B) {
	a := benchAccount(b)
	ctx := context.Background()
	b.ReportAllocs()
	report := reportServerCPU(b)
	i := 0
	for b.Loop() {
		i++
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i), Flags: []string{`\Seen`}}}); err != nil {
			b.Fatal(err)
		}
	}
	report()
}

// BenchmarkAppendParallel: 16 goroutines append to one user's INBOX (its
// writes serialize on the user's row lock).
func BenchmarkAppendParallel(b *testing.B) {
	a := benchAccount(b)
	ctx := context.Background()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

func BenchmarkFetchFlags10k(b *testing.B) {
	a := benchAccount(b)
	ctx := context.Background()
	id := seedMailbox(b, a, 10000)
	uids := uidRange(1, 10000)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := a.Fetch(ctx, id, uids, store.WantFlags, func(*store.Message) error { n++; return nil }); err != nil || n != len(uids) {
			b.Fatalf("fetched %d, %v", n, err)
		}
	}
}

// BenchmarkStoreFlags: +FLAGS then -FLAGS \Flagged on 1,000 contiguous
// UIDs of a 10,000-message mailbox.
func BenchmarkStoreFlags(b *testing.B) {
	a := benchAccount(b)
	ctx := context.Background()
	id := seedMailbox(b, a, 10000)
	uids := uidRange(4001, 1000)
	b.ReportAllocs()
	for b.Loop() {
		for _, op := range []store.FlagOp{store.FlagsAdd, store.FlagsRemove} {
			if res, err := a.StoreFlags(ctx, id, uids, op, []string{`\Flagged`}, 0, false); err != nil || len(res.Updated) != len(uids) {
				b.Fatalf("updated %d, %v", len(res.Updated), err)
			}
		}
	}
}

// BenchmarkCopy1000 copies 1,000 messages to another mailbox (expunged
// again, not timed).
func BenchmarkCopy1000(b *testing.B) {
	a := benchAccount(b)
	ctx := context.Background()
	id := seedMailbox(b, a, 10000)
	if err := a.CreateMailbox(ctx, "X", ""); err != nil {
		b.Fatal(err)
	}
	src := uidRange(2001, 1000)
	b.ReportAllocs()
	for b.Loop() {
		res, err := a.Copy(ctx, id, src, "X")
		if err != nil || len(res.DestUIDs) != len(src) {
			b.Fatalf("copied %d, %v", len(res.DestUIDs), err)
		}
		b.StopTimer()
		if _, err := a.Expunge(ctx, res.DestMailboxID, res.DestUIDs, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkChanges10: what changed in a 10,000-message mailbox since a
// modseq after which 10 messages changed flags.
func BenchmarkChanges10(b *testing.B) {
	a := benchAccount(b)
	ctx := context.Background()
	id := seedMailbox(b, a, 10000)
	st, err := a.Status(ctx, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10 {
		if _, err := a.StoreFlags(ctx, id, []uint32{uint32(100 + 500*i)}, store.FlagsAdd, []string{`\Answered`}, 0, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		cs, err := a.Changes(ctx, id, st.HighestModSeq, st.UIDNext-1)
		if err != nil || len(cs.Changed) != 10 || len(cs.New) != 0 {
			b.Fatalf("changed %d, new %d, %v", len(cs.Changed), len(cs.New), err)
		}
	}
}

// BenchmarkExpungeOneOf100k: EXPUNGE (all \Deleted) when one message of a
// 100,000-message mailbox is \Deleted (the STORE that marks it is not
// timed), as the sqlite benchmark of the name; pg-cpu-ns/op is the
// server's CPU.
func BenchmarkExpungeOneOf100k(b *testing.B) {
	a := benchAccount(b)
	ctx := context.Background()
	id := seedMailbox(b, a, 100000)
	next := uint32(1)
	var cpu time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if _, err := a.StoreFlags(ctx, id, []uint32{next}, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
			b.Fatal(err)
		}
		cpu0, err := pgtest.ServerCPU()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		out, err := a.Expunge(ctx, id, nil, true)
		b.StopTimer()
		if err != nil || len(out) != 1 || out[0] != next {
			b.Fatalf("expunged %v, %v", out, err)
		}
		cpu1, err := pgtest.ServerCPU()
		if err != nil {
			b.Fatal(err)
		}
		cpu += cpu1 - cpu0
		next++
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "pg-cpu-ns/op")
}

// BenchmarkIndexLoad100k: the mailbox index's first load of a
// 100,000-message mailbox (IndexDelta from nothing: every message with
// its contents row); pg-cpu-ns/op is the server's CPU.
func BenchmarkIndexLoad100k(b *testing.B) {
	a := benchAccount(b)
	ctx := context.Background()
	id := seedMailbox(b, a, 100000)
	src := a.(store.IndexSource)
	report := reportServerCPU(b)
	for b.Loop() {
		d, err := src.IndexDelta(ctx, id, 0, 0)
		if err != nil || len(d.Rows) != 100000 {
			b.Fatalf("loaded %d rows, %v", len(d.Rows), err)
		}
	}
	report()
}

// BenchmarkStoreOne: +FLAGS then -FLAGS \Flagged on one message of a
// 500-message mailbox (a client marking one message); pg-cpu-ns/op is
// the server's CPU per STORE.
func BenchmarkStoreOne(b *testing.B) {
	benchStoreOne(b, benchAccount(b))
}

// BenchmarkStoreOneListening is BenchmarkStoreOne on a node's Store
// (listeningRelaxed): PostgreSQL's cost of delivering the change signals
// (to this one listener) is in pg-cpu-ns/op.
func BenchmarkStoreOneListening(b *testing.B) {
	benchStoreOne(b, benchAccountWith(b, listeningRelaxed))
}

func benchStoreOne(b *testing.B, a store.Account) {
	ctx := context.Background()
	id := seedMailbox(b, a, 500)
	report := reportServerCPU(b)
	i := 0
	for b.Loop() {
		op := store.FlagsAdd
		if i%2 == 1 {
			op = store.FlagsRemove
		}
		if _, err := a.StoreFlags(ctx, id, []uint32{uint32(1 + (i/2)%500)}, op, []string{`\Flagged`}, 0, false); err != nil {
			b.Fatal(err)
		}
		i++
	}
	report()
}

// BenchmarkStoreUsersParallel: 16 goroutines on a node's Store
// (listeningRelaxed), each marking messages of a user of its own, one
// STORE at a time: concurrent writes of different users, which do not
// share a commit. pg-cpu-ns/op is the server's CPU per STORE, the change
// signals' delivery included.
func BenchmarkStoreUsersParallel(b *testing.B) {
	ctx := context.Background()
	const users = 16
	accts, boxes := benchUsers(b, users, 50)
	var next atomic.Int32
	b.SetParallelism(users / 2) // 2 CPUs here: 16 goroutines
	report := reportServerCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		u := int(next.Add(1)-1) % users
		for i := 0; pb.Next(); i++ {
			op := store.FlagsAdd
			if i%2 == 1 {
				op = store.FlagsRemove
			}
			if _, err := accts[u].StoreFlags(ctx, boxes[u], []uint32{uint32(1 + (i/2)%50)}, op, []string{`\Flagged`}, 0, false); err != nil {
				b.Error(err)
				return
			}
		}
	})
	report()
}

// BenchmarkDeleteUsersParallel: 16 goroutines on a node's Store
// (listeningRelaxed), each on a user of its own deleting one message at
// a time as a client does: STORE +FLAGS (\Deleted), then EXPUNGE.
// pg-cpu-ns/op and client-cpu-ns/op are per deletion (two writes). At
// most 600 deletions per user.
func BenchmarkDeleteUsersParallel(b *testing.B) {
	ctx := context.Background()
	const users, per = 16, 600
	accts, boxes := benchUsers(b, users, per)
	var next atomic.Int32
	b.SetParallelism(users / 2)
	report := reportServerCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		u := int(next.Add(1)-1) % users
		for uid := uint32(1); pb.Next(); uid++ {
			if uid > per {
				b.Error("more deletions than messages: use -benchtime Nx with N at most 9,600")
				return
			}
			if _, err := accts[u].StoreFlags(ctx, boxes[u], []uint32{uid}, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
				b.Error(err)
				return
			}
			if out, err := accts[u].Expunge(ctx, boxes[u], nil, true); err != nil || len(out) != 1 {
				b.Errorf("expunged %v, %v", out, err)
				return
			}
		}
	})
	report()
}

// benchUsers opens a node's Store (listeningRelaxed) with n users (u0,
// u1, ...), each with INBOX seeded with per messages, and returns their
// accounts and INBOX ids.
func benchUsers(b *testing.B, n, per int) ([]store.Account, []int64) {
	b.Helper()
	ctx := context.Background()
	s := benchStore(b, listeningRelaxed)
	accts := make([]store.Account, n)
	boxes := make([]int64, n)
	for u := range n {
		name := "u" + strconv.Itoa(u)
		if err := s.CreateUser(ctx, name, "h"); err != nil {
			b.Fatal(err)
		}
		var err error
		if accts[u], err = s.Account(ctx, name); err != nil {
			b.Fatal(err)
		}
		boxes[u] = seedMailbox(b, accts[u], per)
	}
	return accts, boxes
}

// BenchmarkRoundTrip is the price of a round trip itself, the yardstick
// of docs/PERFORMANCE.md's decompositions: 16 goroutines on the pool
// each send batches of 1, 2 or 4 indexed one-row reads (the user's row
// by name), so pg-cpu-ns/op is PostgreSQL's CPU per round trip and the
// growth from 1 to 4 its price per statement; client-cpu-ns/op is the
// node's side.
func BenchmarkRoundTrip(b *testing.B) {
	for _, per := range []int{1, 2, 4} {
		b.Run("statements="+strconv.Itoa(per), func(b *testing.B) {
			ctx := context.Background()
			s := benchStore(b, Options{})
			if err := s.CreateUser(ctx, "u", "h"); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(8) // 2 CPUs here: 16 goroutines
			report := reportServerCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					batch := &pgx.Batch{}
					for range per {
						batch.Queue(`SELECT id, name FROM users WHERE name = $1`, "u")
					}
					if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			report()
		})
	}
}
