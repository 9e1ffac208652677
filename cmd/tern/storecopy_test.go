package main

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/pgtest"
)

// appendMsg APPENDs msg through ic.
func (ic *imapConn) appendMsg(tag, msg string) {
	ic.t.Helper()
	fmt.Fprintf(ic.c, "%s APPEND INBOX {%d+}\r\n%s\r\n", tag, len(msg), msg)
	for l := ic.line(); !strings.HasPrefix(l, tag+" "); l = ic.line() {
	}
}

var highestModSeqRe = regexp.MustCompile(`HIGHESTMODSEQ (\d+)`)
var uidValidityRe = regexp.MustCompile(`UIDVALIDITY (\d+)`)

// qresyncExamine opens INBOX read-only with QRESYNC from the client's
// sync point and returns the untagged answer (MAILBOXID left out: it is
// each store's own mailbox id).
func qresyncExamine(t *testing.T, addr, validity, modseq, known string) []string {
	t.Helper()
	ic := dialIMAP(t, addr)
	ic.cmd("q1", "LOGIN alice pw-alice")
	ic.cmd("q2", "ENABLE QRESYNC")
	var out []string
	for _, l := range ic.cmd("q3", "EXAMINE INBOX (QRESYNC (%s %s %s))", validity, modseq, known) {
		if strings.HasPrefix(l, "*") && !strings.Contains(l, "MAILBOXID") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	ic.cmd("q4", "LOGOUT")
	return out
}

// TestStoreCopyQRESYNC: a client synchronised against an sqlite store,
// after changes made there and "tern store copy" to PostgreSQL, gets
// from a node on the copy exactly the QRESYNC answer the sqlite store
// gives: the expunged UID as VANISHED (EARLIER), FETCH for the changed
// and the new message, nothing more (no full resync). So it does after
// the user is copied on from that database to another (--user).
func TestStoreCopyQRESYNC(t *testing.T) {
	needStore(t)
	url := pgtest.NewDatabase(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	serveFlags := []string{"--listen-imap", "127.0.0.1:0", "--listen-imaps", "", "--listen-lmtp", "", "--listen-admin", "", "--insecure-auth"}
	addrs, _, stop := startServe(t, 1, append([]string{"--data", dir}, serveFlags...)...)
	ic := dialIMAP(t, addrs["imap"])
	ic.cmd("a1", "LOGIN alice pw-alice")
	ic.cmd("a2", "ENABLE QRESYNC")
	for i := 1; i <= 6; i++ {
		ic.appendMsg(fmt.Sprintf("b%d", i), fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i))
	}
	sel := strings.Join(ic.cmd("a3", "SELECT INBOX"), "")
	ic.cmd("a4", `STORE 2 +FLAGS (\Seen)`)
	// The client's sync point.
	validity := uidValidityRe.FindStringSubmatch(sel)
	st := strings.Join(ic.cmd("a7", "STATUS INBOX (HIGHESTMODSEQ)"), "")
	modseq := highestModSeqRe.FindStringSubmatch(st)
	if validity == nil || modseq == nil {
		t.Fatalf("no UIDVALIDITY/HIGHESTMODSEQ: %q %q", sel, st)
	}
	// What changes after it.
	ic.cmd("a8", `STORE 3 +FLAGS (\Flagged)`)
	ic.cmd("a9", `STORE 4 +FLAGS (\Deleted)`)
	ic.cmd("a10", "UID EXPUNGE 4")
	ic.appendMsg("b7", "Subject: m7\r\n\r\nbody 7\r\n")
	ic.cmd("a11", "LOGOUT")
	want := qresyncExamine(t, addrs["imap"], validity[1], modseq[1], "1:6")
	stop()

	r := runT(t, "", "store", "copy", "--from", "sqlite:"+dir, "--to", url, "--batch", "2")
	if r.code != 0 || !strings.Contains(r.stderr, "done: 1 users") {
		t.Fatalf("store copy: %+v", r)
	}
	if r := runT(t, "", "store", "copy", "--from", "sqlite:"+dir, "--to", url); r.code != 0 || !strings.Contains(r.stderr, "0 messages copied") {
		t.Fatalf("store copy again: %+v", r)
	}
	addrs, _, stop = startServe(t, 1, append([]string{"--store", url, "--data", t.TempDir()}, serveFlags...)...)
	defer stop()
	got := qresyncExamine(t, addrs["imap"], validity[1], modseq[1], "1:6")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("QRESYNC on the copy:\n%s\nwant (as on the source):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var fetches, vanished []string
	for _, l := range got {
		switch {
		case strings.Contains(l, " FETCH "):
			fetches = append(fetches, l)
		case strings.HasPrefix(l, "* VANISHED"):
			vanished = append(vanished, l)
		}
	}
	if len(fetches) != 2 || !strings.Contains(fetches[0], "UID 3 ") || !strings.Contains(fetches[1], "UID 7 ") ||
		len(vanished) != 1 || vanished[0] != "* VANISHED (EARLIER) 4" {
		t.Fatalf("QRESYNC answer is more than what changed: %q", got)
	}
	if r := runT(t, "", "check", "--store", url); r.code != 0 {
		t.Fatalf("check of the copy: %+v", r)
	}
	if r := runT(t, "", "store", "copy", "--from", url, "--to", "sqlite:"+dir); r.code != exitError {
		t.Fatalf("copy the wrong way: %+v", r)
	}

	// Moving alice on to another database: the same answer there.
	url2 := pgtest.NewDatabase(t)
	if r := runT(t, "", "store", "copy", "--from", url, "--to", url2, "--user", "bob"); r.code != exitError || !strings.Contains(r.stderr, `"bob"`) {
		t.Fatalf("copy of a user the source lacks: %+v", r)
	}
	if r := runT(t, "", "store", "copy", "--from", url, "--to", url2, "--user", "alice"); r.code != 0 || !strings.Contains(r.stderr, "done: 1 users") {
		t.Fatalf("store copy between databases: %+v", r)
	}
	addrs2, _, stop2 := startServe(t, 1, append([]string{"--store", url2, "--data", t.TempDir()}, serveFlags...)...)
	defer stop2()
	if got := qresyncExamine(t, addrs2["imap"], validity[1], modseq[1], "1:6"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("QRESYNC on the second copy:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStoreCopyBlobStore: with --blob-store the copied bodies go to the
// blob store (objects in the directory), and the copy reads back clean.
func TestStoreCopyBlobStore(t *testing.T) {
	needStore(t)
	url := pgtest.NewDatabase(t)
	dir, blobs := t.TempDir(), t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if r := runT(t, "Subject: hi\r\n\r\na body to copy\r\n", "deliver", "--user", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("deliver: %+v", r)
	}
	if r := runT(t, "", "store", "copy", "--from", "sqlite:"+dir, "--to", url, "--blob-store", "file:"+blobs); r.code != 0 {
		t.Fatalf("store copy: %+v", r)
	}
	objects := 0
	err := filepath.WalkDir(blobs, func(p string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(blobs, p); err == nil && !d.IsDir() && !strings.HasPrefix(rel, "tmp"+string(filepath.Separator)) {
			objects++
		}
		return err
	})
	if err != nil || objects != 1 {
		t.Fatalf("%d objects in the blob store after the copy (%v), want 1", objects, err)
	}
	if r := runT(t, "", "check", "--store", url, "--blob-store", "file:"+blobs); r.code != 0 {
		t.Fatalf("check after the copy: %+v", r)
	}
}

// TestStoreCopyRefusedBesideServer: tern store copy opens an sqlite
// source as tern check does (sqlite.Options.Exclusive, server.lock), so
// it is refused while a tern serve uses the data directory, which would
// keep changing the source under the copy (and no server can start
// while a copy runs).
func TestStoreCopyRefusedBesideServer(t *testing.T) {
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
