package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/pgtest"
)

// TestReviewStoreCopyBesideServer: README says "the source must not
// change while it is copied (systemctl stop tern)", and the sqlite store
// has the means to enforce it (server.lock, sqlite.Options.Exclusive, as
// tern check uses); tern store copy opens its sqlite source as an
// ordinary command, so it runs beside a tern serve that keeps taking
// sessions and deliveries, and a server may start during the copy.
func TestReviewStoreCopyBesideServer(t *testing.T) {
	needStore(t)
	url := pgtest.NewDatabase(t)
	data := filepath.Join(t.TempDir(), "data")
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", data); r.code != exitOK {
		t.Fatalf("user add: %+v", r)
	}
	args := []string{"--data", data, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "", "--listen-lmtp", "", "--listen-admin", ""}
	_, _, stop := startServe(t, 1, args...)
	defer stop()
	r := runT(t, "", "store", "copy", "--from", "sqlite:"+data, "--to", url)
	if r.code == exitOK || !strings.Contains(r.stderr, "a tern serve is using this data directory") {
		t.Errorf("store copy beside a running server: %+v", r)
	}
}
