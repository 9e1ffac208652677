package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// TestIndexCommand: tern index drains a user's index queue (with a
// progress bar), --rebuild indexes everything again, --all covers every
// user, and an unknown user is an error.
func TestIndexCommand(t *testing.T) {
	needStore(t)
	data := t.TempDir()
	for _, u := range []string{"alice", "bob"} {
		if r := runT(t, "pw\n", "user", "add", u, "--data", data); r.code != exitOK {
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
	for range 40 {
		if _, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: s\r\n\r\nhello world\r\n")}}); err != nil {
			t.Fatal(err)
		}
	}
	acct.Close()
	st.Close()

	r := runT(t, "", "index", "alice", "--data", data)
	if r.code != exitOK || !strings.Contains(r.stdout, "alice: 40 messages indexed") || !strings.Contains(r.stderr, "[###") {
		t.Fatalf("index alice: %+v", r)
	}
	if r := runT(t, "", "index", "alice", "--data", data); r.code != exitOK || !strings.Contains(r.stdout, "alice: 0 messages indexed") {
		t.Fatalf("index alice again: %+v", r)
	}
	if r := runT(t, "", "index", "--rebuild", "--all", "--data", data); r.code != exitOK ||
		!strings.Contains(r.stdout, "alice: 40 messages indexed") || !strings.Contains(r.stdout, "bob: 0 messages indexed") {
		t.Fatalf("index --rebuild --all: %+v", r)
	}
	if r := runT(t, "", "index", "nobody", "--data", data); r.code != exitError {
		t.Fatalf("index of an unknown user: %+v", r)
	}
	if r := runT(t, "", "check", "--data", data); r.code != exitOK {
		t.Fatalf("check: %+v", r)
	}
}

// TestIndexCommandPostgres: tern index works on a postgres store too:
// it extracts the queued text of the user's mail (counted by distinct
// body), and --rebuild extracts it again.
func TestIndexCommandPostgres(t *testing.T) {
	needStore(t)
	url := pgtest.NewDatabase(t)
	for _, u := range []string{"alice", "bob"} {
		if r := runT(t, "pw\n", "user", "add", u, "--store", url); r.code != exitOK {
			t.Fatalf("user add: %+v", r)
		}
	}
	for i := range 5 {
		msg := fmt.Sprintf("Subject: s%d\r\n\r\nhello world %d\r\n", i, i)
		if r := runT(t, msg, "deliver", "--user", "alice", "--store", url); r.code != exitOK {
			t.Fatalf("deliver: %+v", r)
		}
	}
	if r := runT(t, "", "index", "alice", "--store", url); r.code != exitOK || !strings.Contains(r.stdout, "alice: 5 messages indexed") {
		t.Fatalf("index alice: %+v", r)
	}
	if r := runT(t, "", "index", "alice", "--store", url); r.code != exitOK || !strings.Contains(r.stdout, "alice: 0 messages indexed") {
		t.Fatalf("index alice again: %+v", r)
	}
	if r := runT(t, "", "index", "--rebuild", "--all", "--store", url); r.code != exitOK ||
		!strings.Contains(r.stdout, "alice: 5 messages indexed") || !strings.Contains(r.stdout, "bob: 0 messages indexed") {
		t.Fatalf("index --rebuild --all: %+v", r)
	}
}

// TestPostgresOptions: tern serve runs the postgres store's blob
// collector whether or not it indexes text (index.text = false once left
// a blob store without one), other commands run neither.
func TestPostgresOptions(t *testing.T) {
	cfg := &config.Config{}
	for _, c := range []struct {
		indexText bool
		use       storeUse
		gc        bool
	}{
		{true, useServer, true},
		{false, useServer, true},
		{false, useCommand, false},
		{false, useExclusive, false},
	} {
		o := postgresOptions(cfg, sqlite.FsyncAlways, nil, nil, c.indexText, c.use)
		if (o.BlobGC.Every > 0) != c.gc || o.TextIndexer != c.indexText {
			t.Errorf("index text %v, use %v: blob collector every %v, text indexer %v", c.indexText, c.use, o.BlobGC.Every, o.TextIndexer)
		}
	}
}
