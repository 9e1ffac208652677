package main

import (
	"context"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
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
