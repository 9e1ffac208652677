package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

func TestCheck(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")

	// No store: an error, and nothing is created.
	if r := runT(t, "", "check", "--data", data); r.code != exitError || !strings.Contains(r.stderr, "no store in") {
		t.Fatalf("check without store: %+v", r)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("check created the data directory: %v", err)
	}

	if r := runT(t, "pw\n", "user", "add", "alice", "--data", data); r.code != exitOK {
		t.Fatalf("user add: %+v", r)
	}
	ctx := context.Background()
	st, err := openStore(ctx, &config.Config{DataDir: data}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := st.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// Bodies above the size kept in the database, so that they are files.
	pad := strings.Repeat("padding line\r\n", sqlite.DefaultInlineBodyMax/14+1)
	for _, body := range []string{"Subject: one\r\n\r\nfirst\r\n" + pad, "Subject: two\r\n\r\nsecond\r\n" + pad} {
		if _, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(body)}}); err != nil {
			t.Fatal(err)
		}
	}
	acct.Close()
	st.Close()

	if r := runT(t, "", "check", "--data", data); r.code != exitOK || !strings.Contains(r.stdout, "store is consistent") {
		t.Fatalf("clean store: %+v", r)
	}

	// Find the body files.
	var blobs []string
	filepath.WalkDir(filepath.Join(data, "users"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(filepath.Dir(p))) == "blobs" {
			blobs = append(blobs, p)
		}
		return nil
	})
	if len(blobs) != 2 {
		t.Fatalf("found %d body files, want 2: %q", len(blobs), blobs)
	}

	// A leftover temp file of an interrupted write is found and repaired.
	stray := filepath.Join(filepath.Dir(blobs[0]), ".tmp-12345")
	if err := os.WriteFile(stray, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runT(t, "", "check", "--data", data)
	if r.code != exitProblems || !strings.Contains(r.stdout, "unreferenced file") || !strings.Contains(r.stdout, "1 problem(s)") {
		t.Fatalf("stray file: %+v", r)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("check without --repair removed a file: %v", err)
	}
	r = runT(t, "", "check", "--repair", "--data", data)
	if r.code != exitOK || !strings.Contains(r.stdout, "repaired; checking again") || !strings.Contains(r.stdout, "store is consistent") {
		t.Fatalf("repair stray file: %+v", r)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("stray file still there: %v", err)
	}

	// A truncated body cannot be repaired: reported, exit 3.
	if err := os.Truncate(blobs[1], 3); err != nil {
		t.Fatal(err)
	}
	r = runT(t, "", "check", "--data", data, "--repair")
	if r.code != exitProblems || !strings.Contains(r.stdout, "not repaired: ") || !strings.Contains(r.stdout, "has size 3") {
		t.Fatalf("damaged body: %+v", r)
	}

	// A missing body too.
	if err := os.Remove(blobs[0]); err != nil {
		t.Fatal(err)
	}
	r = runT(t, "", "check", "--data", data)
	if r.code != exitProblems || !strings.Contains(r.stdout, "missing") || !strings.Contains(r.stdout, "2 problem(s)") {
		t.Fatalf("missing body: %+v", r)
	}

	if r := runT(t, "", "check", "extra", "--data", data); r.code != exitUsage {
		t.Fatalf("extra argument: %+v", r)
	}
	if r := runT(t, "", "check", "-h"); r.code != exitOK || !strings.Contains(r.stdout, "--repair") || !strings.Contains(r.stdout, "--compact") {
		t.Fatalf("help: %+v", r)
	}
}

// TestCheckCompact: "tern check --compact" checks, then gives back the
// free pages that expunging most of a user's mail left in mail.db,
// reporting each user's sizes; the remaining mail is intact.
func TestCheckCompact(t *testing.T) {
	needStore(t)
	data := filepath.Join(t.TempDir(), "data")
	for _, name := range []string{"alice", "bob"} {
		if r := runT(t, "pw\n", "user", "add", name, "--data", data); r.code != exitOK {
			t.Fatalf("user add: %+v", r)
		}
	}
	ctx := context.Background()
	st, err := openStore(ctx, &config.Config{DataDir: data}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := st.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// Random letters: kept in mail.db, and not compressible there.
	rng := rand.New(rand.NewPCG(1, 2))
	var msgs []store.NewMessage
	for i := range 200 {
		pad := make([]byte, 5600)
		for j := range pad {
			pad[j] = 'a' + byte(rng.IntN(26))
		}
		msgs = append(msgs, store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, pad))})
	}
	res, err := acct.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.Expunge(ctx, res.MailboxID, res.UIDs[10:], false); err != nil {
		t.Fatal(err)
	}
	acct.Close()
	st.Close()
	appendKeptBase64(t, data, "bob")
	mailDB := filepath.Join(data, "users", "1", "mail.db")
	before := fileSizes(t, mailDB, mailDB+"-wal")

	r := runT(t, "", "check", "--compact", "--data", data)
	t.Logf("stderr:\n%sstdout:\n%s", r.stderr, r.stdout)
	if r.code != exitOK || !strings.Contains(r.stdout, "store is consistent") ||
		!strings.Contains(r.stderr, "compacting alice (1/2)") || !strings.Contains(r.stderr, "compacting bob (2/2)") ||
		!strings.Contains(r.stdout, "compacted 2 user(s): ") {
		t.Fatalf("check --compact: %+v", r)
	}
	if !strings.Contains(r.stdout, "packed 1 body file(s) of bob: ") {
		t.Fatalf("check --compact did not pack bob's body file written with store.keep_base64: %q", r.stdout)
	}
	after := fileSizes(t, mailDB, mailDB+"-wal")
	want := fmt.Sprintf("compacted alice: %d -> %d bytes", before, after)
	if !strings.Contains(r.stdout, want) || after*2 > before {
		t.Fatalf("mail.db and log %d -> %d bytes; output %q, want %q", before, after, r.stdout, want)
	}

	st, err = openStore(ctx, &config.Config{DataDir: data}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, err = st.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	status, err := acct.Status(ctx, "INBOX")
	if err != nil || status.Messages != 10 || status.UIDNext != 201 {
		t.Fatalf("INBOX after compaction: %+v, %v", status, err)
	}
	body, err := acct.OpenBody(ctx, res.MailboxID, res.UIDs[9])
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if got, want := body.Size(), int64(len(msgs[9].Body)); got != want {
		t.Fatalf("body of UID %d: %d bytes, want %d", res.UIDs[9], got, want)
	}

	// A postgres store has its own VACUUM: a usage error, nothing done.
	r = runT(t, "", "check", "--compact", "--store", "postgres://tern@127.0.0.1:1/none")
	if r.code != exitUsage || !strings.Contains(r.stderr, "embedded store") || !strings.Contains(r.stderr, "VACUUM") {
		t.Fatalf("check --compact on postgres: %+v", r)
	}
}

// fileSizes returns the total size of the files that exist among paths.
func fileSizes(t *testing.T, paths ...string) int64 {
	t.Helper()
	var n int64
	for _, p := range paths {
		fi, err := os.Stat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestCheckRefusesBesideServer: tern check does not run while a tern
// serve has the data directory open (its counts and repairs would race
// the server's writes), and runs once the server has stopped; a second
// server beside the first still starts.
func TestCheckRefusesBesideServer(t *testing.T) {
	needStore(t)
	data := filepath.Join(t.TempDir(), "data")
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", data); r.code != exitOK {
		t.Fatalf("user add: %+v", r)
	}
	args := []string{"--data", data, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "", "--listen-lmtp", "", "--listen-admin", ""}
	_, _, stop := startServe(t, 1, args...)
	_, _, stop2 := startServe(t, 1, args...)
	r := runT(t, "", "check", "--data", data)
	if r.code != exitError || !strings.Contains(r.stderr, "a tern serve is using this data directory") {
		t.Errorf("check beside a running server: %+v", r)
	}
	stop2()
	stop()
	if r := runT(t, "", "check", "--data", data); r.code != exitOK || !strings.Contains(r.stdout, "store is consistent") {
		t.Fatalf("check after the server stopped: %+v", r)
	}
}

// appendKeptBase64 appends to user's INBOX, through a store opened with
// store.keep_base64, a message with a 40 KB base64 attachment: its body
// file is written as it came, as before schema version 19.
func appendKeptBase64(t *testing.T, data, user string) {
	t.Helper()
	ctx := context.Background()
	st, err := openStore(ctx, &config.Config{DataDir: data, Store: config.Store{KeepBase64: true}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, err := st.Account(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	bin := make([]byte, 40000)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	var b strings.Builder
	b.WriteString("Subject: attached\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for enc := base64.StdEncoding.EncodeToString(bin); len(enc) > 0; {
		k := min(76, len(enc))
		b.WriteString(enc[:k] + "\r\n")
		enc = enc[k:]
	}
	if _, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(b.String())}}); err != nil {
		t.Fatal(err)
	}
}
