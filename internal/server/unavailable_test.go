package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
)

// TestStorageUnavailable: while the PostgreSQL server is down, a command
// that needs it gets a tagged NO [UNAVAILABLE] (RFC 5530), the session
// goes on (NOOP, which needs no database, is OK), and once the server is
// back the same commands work again. Before, the database's connection
// errors were taken for the client's: the server dropped the connection
// without a word.
func TestStorageUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and stops a PostgreSQL server of its own")
	}
	c, err := pgtest.StartWith("-c synchronous_commit=on") // the APPEND survives the stop
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { c.Stop() })
	url, err := c.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, serverOpts{insecureAuth: true, openStore: func(t *testing.T, n store.Notifier) store.Store {
		st, err := postgres.Open(context.Background(), url, postgres.Options{Notifier: n})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return st
	}})
	ts.addUser("alice", "pw")
	cl := ts.dial()
	cl.ok("LOGIN alice pw")
	cl.appendMsg("INBOX", "", "Subject: x\r\n\r\nhello\r\n")
	cl.ok("SELECT INBOX")
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"FETCH 1 (FLAGS)", `STORE 1 +FLAGS (\Seen)`, "STATUS Drafts (MESSAGES)", "FETCH 1 BODY.PEEK[]", "FETCH 1 BODY[]", "LIST \"\" *"} {
		if _, tagged := cl.do(cmd); !strings.HasPrefix(tagged, "NO [UNAVAILABLE]") {
			t.Errorf("%s with the database down: %q, want NO [UNAVAILABLE]", cmd, tagged)
		}
	}
	cl.ok("NOOP")
	other := ts.dial()
	if _, tagged := other.do("LOGIN alice pw"); !strings.HasPrefix(tagged, "NO [UNAVAILABLE]") {
		t.Errorf("LOGIN with the database down: %q, want NO [UNAVAILABLE]", tagged)
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	// A connection the pool kept from before the stop may fail once more.
	for i := 0; ; i++ {
		_, tagged := cl.do(`STORE 1 +FLAGS (\Seen)`)
		if strings.HasPrefix(tagged, "OK") {
			break
		}
		if i == 50 || !strings.HasPrefix(tagged, "NO [UNAVAILABLE]") {
			t.Fatalf("STORE after the database came back: %q", tagged)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if u := cl.ok("FETCH 1 (FLAGS)"); len(u) != 1 || !strings.Contains(u[0], `\Seen`) {
		t.Errorf("FETCH after the database came back: %q", u)
	}
}
