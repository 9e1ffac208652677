package blob_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/blob/blobtest"
)

func TestFile(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := blob.OpenFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestFileLayout: objects live under DIR/xx/, nothing stays in DIR/tmp,
// and old temporary files are removed at open.
func TestFileLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := blob.Open(context.Background(), "file:"+dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("layout")
	k := blobtest.Key(data)
	if err := s.Put(context.Background(), k, data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, k[:2], k)); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("tmp holds %d files", len(left))
	}
	old, young := filepath.Join(dir, "tmp", "old"), filepath.Join(dir, "tmp", "young")
	for _, f := range []string{old, young} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.OpenFile(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("old temporary file: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Fatalf("young temporary file: %v", err)
	}
}

func TestParseURLs(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "ak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "sk")
	cfg, err := blob.ParseS3URL("s3://mail?endpoint=http://127.0.0.1:8333&region=eu-1&path_style=true&prefix=t/&timeout=5s&attempts=9")
	if err != nil {
		t.Fatal(err)
	}
	want := blob.S3Config{Bucket: "mail", Endpoint: "http://127.0.0.1:8333", Region: "eu-1", PathStyle: true, Prefix: "t/", AccessKey: "ak", SecretKey: "sk",
		Timeout: 5 * time.Second, Attempts: 9}
	if cfg != want {
		t.Fatalf("%+v", cfg)
	}
	for _, bad := range []string{"s3://", "s3://b/path", "s3://b?path_style=maybe", "s3://b?bucket=x", "s3://b?timeout=5", "s3://b?timeout=-1s", "s3://b?attempts=0", "db", "ftp://x", "file:"} {
		if _, err := blob.Open(context.Background(), bad); err == nil {
			t.Errorf("Open(%q) accepted", bad)
		}
	}
	d := t.TempDir()
	if s, err := blob.Open(context.Background(), "file://"+d); err != nil || s.String() != "file:"+d {
		t.Fatalf("file URL: %v %v", s, err)
	}
}
