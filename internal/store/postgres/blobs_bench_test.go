package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
	"github.com/tern-imap/tern/internal/store"
)

// BenchmarkAppendBlobs: APPEND of one new message (4 KiB or 64 KiB) with
// bodies in the database, in a file blob store and in a private SeaweedFS
// S3 server; "seq" is one user appending (latency), "par8" eight users
// at once (throughput). Run with TERN_PGTEST_FSYNC=on for durable
// commits:
//
//	TERN_PGTEST_FSYNC=on go test -run '^$' -bench AppendBlobs -benchtime 400x ./internal/store/postgres/
func BenchmarkAppendBlobs(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) blob.Store
	}{
		{"db", func(*testing.B) blob.Store { return nil }},
		{"file", func(b *testing.B) blob.Store {
			f, err := blob.OpenFile(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return f
		}},
		{"s3", func(b *testing.B) blob.Store {
			// One bucket for all cases (SeaweedFS allocates volumes for
			// a new bucket at its first write: seconds), a prefix each.
			if s3Bucket.Bucket == "" {
				s3Bucket = s3test.NewBucket(b)
			}
			cfg := s3Bucket
			cfg.Prefix = fmt.Sprintf("%s/", b.Name())
			s, err := blob.OpenS3(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			warm := []byte("warm-up")
			if err := s.Put(context.Background(), blobKey(bodyHash(warm)), warm); err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, bs := range stores {
		for _, size := range []int{4 << 10, 64 << 10} {
			for _, users := range []int{1, 8} {
				name := fmt.Sprintf("%s/%dKiB/seq", bs.name, size>>10)
				if users > 1 {
					name = fmt.Sprintf("%s/%dKiB/par%d", bs.name, size>>10, users)
				}
				b.Run(name, func(b *testing.B) { benchAppendBlobs(b, bs.open(b), size, users) })
			}
		}
	}
}

// s3Bucket is the bucket BenchmarkAppendBlobs's s3 cases share.
var s3Bucket blob.S3Config

func benchAppendBlobs(b *testing.B, blobs blob.Store, size, users int) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(b), Options{Logger: quietLogger(), MaxConns: 16, Blobs: blobs})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	accts := make([]store.Account, users)
	for i := range accts {
		name := fmt.Sprintf("u%d", i)
		if err := s.CreateUser(ctx, name, "h"); err != nil {
			b.Fatal(err)
		}
		if accts[i], err = s.Account(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	filler := strings.Repeat("0123456789abcdef ", size/17+1)[:size]
	var n, next atomic.Int64
	body := func() []byte {
		return fmt.Appendf(nil, "Subject: bench %d\r\nMessage-ID: <%d@bench>\r\n\r\n%s\r\n", n.Add(1), n.Load(), filler)
	}
	b.SetBytes(int64(size))
	if users == 1 {
		for b.Loop() {
			if _, err := accts[0].Append(ctx, "INBOX", []store.NewMessage{{Body: body()}}); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism((users + 1) / 2) // GOMAXPROCS is 2 here: 2 × 4 = 8 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		a := accts[int(next.Add(1)-1)%users]
		for pb.Next() {
			if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: body()}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
