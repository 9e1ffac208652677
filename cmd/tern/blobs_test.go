package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
)

// TestServePostgresFileBlobs: tern user add, serve, deliver and blobs-gc
// with --blob-store file:DIR: bodies land in DIR once, FETCH reads them
// back, and blobs-gc deletes them only once unused.
func TestServePostgresFileBlobs(t *testing.T) {
	dir := t.TempDir()
	blobs, err := blob.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	testServeWithBlobs(t, "file:"+dir, blobs)
}

// TestServePostgresS3Blobs: the same with an s3:// blob store on a
// private SeaweedFS server, credentials from the environment.
func TestServePostgresS3Blobs(t *testing.T) {
	srv := s3test.Shared(t)
	cfg := s3test.NewBucket(t)
	for _, kv := range s3test.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	blobs, err := blob.OpenS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	testServeWithBlobs(t, srv.URL(cfg.Bucket), blobs)
}

func countObjects(t *testing.T, b blob.Store) int {
	t.Helper()
	n := 0
	if err := b.List(context.Background(), func(string, int64, time.Time) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func testServeWithBlobs(t *testing.T, blobURL string, blobs blob.Store) {
	url := pgtest.NewDatabase(t)
	conf := filepath.Join(t.TempDir(), "tern.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "[store]\nurl = %q\nblobs = %q\nblob_grace = \"0s\"\n", url, blobURL), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if r := runT(t, "pw\n", "user", "add", u, "--config", conf); r.code != 0 {
			t.Fatalf("user add: %+v", r)
		}
	}
	msg := "Subject: to both\r\n\r\n" + strings.Repeat("a large body line\r\n", 2000)
	for _, u := range []string{"alice", "bob"} {
		if r := runT(t, msg, "deliver", "--user", u, "--store", url, "--blob-store", blobURL); r.code != 0 {
			t.Fatalf("deliver: %+v", r)
		}
	}
	if n := countObjects(t, blobs); n != 1 {
		t.Fatalf("%d objects after delivering one body twice", n)
	}
	addrs, _, stop := startServe(t, 1, "--config", conf, "--data", t.TempDir(), "--listen-imap", "127.0.0.1:0",
		"--listen-imaps", "", "--listen-lmtp", "", "--listen-admin", "", "--insecure-auth")
	defer stop()
	c := dialIMAP(t, addrs["imap"])
	c.cmd("a1", "LOGIN alice pw")
	c.cmd("a2", "SELECT INBOX")
	lines := c.cmd("a3", "FETCH 1 BODY[]")
	if got := strings.Join(lines, ""); !strings.Contains(got, fmt.Sprintf("{%d}", len(msg))) || strings.Count(got, "a large body line") != 2000 {
		t.Fatalf("FETCH BODY[]: %d lines", len(lines))
	}
	note := "Subject: appended\r\n\r\nthrough IMAP\r\n"
	fmt.Fprintf(c.c, "a4 APPEND INBOX {%d}\r\n", len(note))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	fmt.Fprintf(c.c, "%s\r\n", note)
	for l := c.line(); !strings.HasPrefix(l, "a4 "); l = c.line() {
	}
	if n := countObjects(t, blobs); n != 2 {
		t.Fatalf("%d objects after an APPEND of a new body", n)
	}
	c.cmd("a5", "STORE 1:* +FLAGS (\\Deleted)")
	c.cmd("a6", "EXPUNGE")
	if r := runT(t, "", "blobs-gc", "--config", conf); r.code != 0 || !strings.Contains(r.stdout, "deleted: 1") {
		t.Fatalf("blobs-gc after alice's expunge: %+v", r)
	}
	if r := runT(t, "", "check", "--config", conf); r.code != 0 {
		t.Fatalf("check: %+v", r)
	}
	if r := runT(t, "", "user", "del", "bob", "--config", conf); r.code != 0 {
		t.Fatalf("user del: %+v", r)
	}
	if r := runT(t, "", "blobs-gc", "--sweep", "--config", conf); r.code != 0 || !strings.Contains(r.stdout, "deleted: 1") {
		t.Fatalf("blobs-gc after bob went: %+v", r)
	}
	if n := countObjects(t, blobs); n != 0 {
		t.Fatalf("%d objects left when no message uses any", n)
	}
	if r := runT(t, "", "blobs-gc", "--sweep", "--store", url); r.code != exitError {
		t.Fatalf("blobs-gc --sweep without a blob store: %+v", r)
	}
	if r := runT(t, "", "blobs-gc", "--store", url); r.code != exitOK || !strings.Contains(r.stdout, "deleted: 0") {
		t.Fatalf("blobs-gc of the bodies kept in the database: %+v", r)
	}
}
