package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/blob/blobtest"
	"github.com/tern-imap/tern/internal/s3test"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }

// TestS3 runs the suite on a private SeaweedFS server, a bucket per test.
func TestS3(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := blob.OpenS3(context.Background(), s3test.NewBucket(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestS3Prefix: with a prefix, the store sees only its own objects.
func TestS3Prefix(t *testing.T) {
	cfg := s3test.NewBucket(t)
	ctx := context.Background()
	whole, err := blob.OpenS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Prefix = "tern/"
	pre, err := blob.OpenS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("prefixed")
	if err := pre.Put(ctx, blobtest.Key(data), data); err != nil {
		t.Fatal(err)
	}
	blobtest.Check(t, pre, data)
	var keys []string
	if err := whole.List(ctx, func(k string, _ int64, _ time.Time) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("the bucket without prefix lists %v", keys)
	}
}

// TestS3URL opens a store from its URL and credentials in the
// environment; a missing bucket and wrong credentials are refused.
func TestS3URL(t *testing.T) {
	srv := s3test.Shared(t)
	cfg := s3test.NewBucket(t)
	for _, kv := range s3test.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	s, err := blob.Open(ctx, srv.URL(cfg.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("by URL")
	if err := s.Put(ctx, blobtest.Key(data), data); err != nil {
		t.Fatal(err)
	}
	blobtest.Check(t, s, data)
	if _, err := blob.Open(ctx, srv.URL("tern-no-such-bucket")); err == nil {
		t.Fatal("a missing bucket was accepted")
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if s, err := blob.Open(ctx, srv.URL(cfg.Bucket)); err == nil {
		if err := s.Put(ctx, blobtest.Key(data), data); err == nil {
			t.Fatal("wrong credentials were accepted")
		}
	}
}

// TestS3Unavailable: an S3 store that refuses connections, or that takes
// them and never answers, fails each call within a few seconds with
// blob.ErrUnavailable (which the IMAP server answers with NO
// [UNAVAILABLE]); so does a body that stops half-way. A missing key, a
// cancelled context and the end of an object are not marked, and the
// store works again once it answers.
func TestS3Unavailable(t *testing.T) {
	cfg := s3test.NewBucket(t)
	ctx := context.Background()
	direct, err := blob.OpenS3(ctx, cfg) // the server takes a while to store 16 MiB
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("a small body")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	for _, b := range [][]byte{small, big} {
		if err := direct.Put(ctx, blobtest.Key(b), b); err != nil {
			t.Fatal(err)
		}
	}
	cfg, proxy := s3test.Proxied(t, cfg)
	cfg.Timeout = 500 * time.Millisecond
	s, err := blob.OpenS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	unavailable := func(what string, f func() error) {
		t.Helper()
		start := time.Now()
		err := f()
		if !errors.Is(err, blob.ErrUnavailable) {
			t.Errorf("%s: %v, want blob.ErrUnavailable", what, err)
		}
		t.Logf("%s: %v after %v", what, err, time.Since(start).Round(time.Millisecond))
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%s took %v", what, d)
		}
	}
	stat := func() error { _, err := s.Stat(ctx, blobtest.Key(small)); return err }

	if _, err := s.Stat(ctx, blobtest.Key([]byte("none"))); !errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("Stat of a missing key: %v, want ErrNotFound alone", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Stat(cancelled, blobtest.Key(small)); err == nil || errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("Stat with a cancelled context: %v, want an error not marked unavailable", err)
	}
	blobtest.Check(t, s, small) // reads to the end: io.EOF is not marked

	// A body that stops coming half-way: the open object's reads fail.
	obj, err := s.Open(ctx, blobtest.Key(big))
	if err != nil {
		t.Fatal(err)
	}
	proxy.FreezeAfter(100 << 10)
	unavailable("reading a body that stopped", func() error {
		_, err := io.Copy(io.Discard, io.NewSectionReader(obj, 0, obj.Size()))
		return err
	})
	obj.Close()
	unavailable("Stat of a store that does not answer", stat)
	unavailable("Put to a store that does not answer", func() error {
		b := []byte("new while frozen")
		return s.Put(ctx, blobtest.Key(b), b)
	})
	proxy.Mend()
	if err := stat(); err != nil {
		t.Fatalf("Stat once the store answers again: %v", err)
	}
	proxy.Cut()
	unavailable("Stat of a store that refuses connections", stat)
	unavailable("Open of a store that refuses connections", func() error { _, err := s.Open(ctx, blobtest.Key(small)); return err })
	proxy.Mend()
	blobtest.Check(t, s, small)
}

// BenchmarkS3Read reads an object through an io.SectionReader in 8 KiB
// reads (io.Copy to io.Discard), as a body's readers do: how many GETs
// that costs shows in the time per object.
func BenchmarkS3Read(b *testing.B) {
	cfg := s3test.NewBucket(b)
	ctx := context.Background()
	s, err := blob.OpenS3(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{16 << 10, 256 << 10, 4 << 20} {
		data := bytes.Repeat([]byte("x"), size)
		key := blobtest.Key(data)
		if err := s.Put(ctx, key, data); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				obj, err := s.Open(ctx, key)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, io.NewSectionReader(obj, 0, obj.Size())); err != nil || n != int64(size) {
					b.Fatalf("read %d of %d bytes: %v", n, size, err)
				}
				obj.Close()
			}
		})
	}
}

// TestS3PartialRead: reading a little of a large object in the middle
// (one part of a message with a large attachment) brings about that
// much from the store, not the rest of the object; reads in small pieces
// and at scattered offsets give the object's bytes.
func TestS3PartialRead(t *testing.T) {
	cfg, proxy := s3test.Proxied(t, s3test.NewBucket(t))
	ctx := context.Background()
	s, err := blob.OpenS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	if err := s.Put(ctx, blobtest.Key(data), data); err != nil {
		t.Fatal(err)
	}
	before := proxy.Served()
	for range 3 {
		obj, err := s.Open(ctx, blobtest.Key(data))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 8<<10)
		if _, err := obj.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, data[1<<20:1<<20+8<<10]) {
			t.Fatalf("ReadAt 8 KiB at 1 MiB: %v", err)
		}
		obj.Close()
	}
	if served := proxy.Served() - before; served > 2<<20 {
		t.Errorf("three reads of 8 KiB took %d bytes from the store", served)
	}
	obj, err := s.Open(ctx, blobtest.Key(data))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	for _, r := range []struct{ off, n int }{{0, 100}, {100, 5000}, {70 << 10, 3}, {15 << 20, 1 << 20}, {5, 9 << 20}, {3 << 20, 4 << 20}} {
		got := make([]byte, r.n)
		if _, err := obj.ReadAt(got, int64(r.off)); err != nil || !bytes.Equal(got, data[r.off:r.off+r.n]) {
			t.Fatalf("ReadAt %d bytes at %d: %v", r.n, r.off, err)
		}
	}
}

// TestS3ObjectGone: an object deleted after Open fails the reads that
// need a new window with the store's answer, not as an unavailable
// store (which would make the IMAP server say "try again later").
func TestS3ObjectGone(t *testing.T) {
	ctx := context.Background()
	s, err := blob.OpenS3(ctx, s3test.NewBucket(t))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("y"), 1<<20)
	if err := s.Put(ctx, blobtest.Key(data), data); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Open(ctx, blobtest.Key(data))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if err := s.Delete(ctx, blobtest.Key(data)); err != nil {
		t.Fatal(err)
	}
	_, err = obj.ReadAt(make([]byte, 10), 900<<10)
	if err == nil || errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("ReadAt of a deleted object: %v, want an error not marked unavailable", err)
	}
}

// TestS3RangeIgnored: a server (or proxy) that ignores Range and answers
// with the whole object is read correctly from the start and refused
// elsewhere, never taken for the bytes asked for.
func TestS3RangeIgnored(t *testing.T) {
	data := make([]byte, 600<<10)
	for i := range data {
		data[i] = byte(i % 251)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		if r.Method == http.MethodGet {
			w.Write(data)
		}
	}))
	defer srv.Close()
	// The fake server answers OpenS3's bucket check (a HEAD) with 200.
	s, err := blob.OpenS3(context.Background(), blob.S3Config{Bucket: "fake", Endpoint: srv.URL, Region: "us-east-1", PathStyle: true, AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatalf("OpenS3: %v", err)
	}
	obj, err := s.Open(context.Background(), blobtest.Key(data))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if obj.Size() != int64(len(data)) {
		t.Fatalf("Size %d, want %d", obj.Size(), len(data))
	}
	got := make([]byte, 1000)
	if _, err := obj.ReadAt(got, 0); err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("ReadAt at 0: %v", err)
	}
	if _, err := obj.ReadAt(got, 500<<10); err == nil {
		t.Fatalf("ReadAt at 500 KiB of a server that ignores Range: no error (got %q...)", got[:8])
	}
}
