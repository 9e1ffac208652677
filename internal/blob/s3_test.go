package blob_test

import (
	"context"
	"os"
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
