package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// logRecorder is a slog.Handler that keeps every record (level and
// message with attributes as text) for the test to inspect.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteString(" ")
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	h.lines = append(h.lines, b.String())
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorderView{h, as}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// find returns the recorded lines starting with prefix.
func (h *logRecorder) find(prefix string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, l := range h.lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// recorderView carries With attributes into the shared recorder.
type recorderView struct {
	h     *logRecorder
	attrs []slog.Attr
}

func (v *recorderView) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (v *recorderView) Handle(ctx context.Context, r slog.Record) error {
	r2 := r.Clone()
	r2.AddAttrs(v.attrs...)
	return v.h.Handle(ctx, r2)
}
func (v *recorderView) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorderView{v.h, append(append([]slog.Attr{}, v.attrs...), as...)}
}
func (v *recorderView) WithGroup(string) slog.Handler { return v }

// userDB opens a second connection to a user's mail.db, as an operator
// or a broken disk would touch it behind the server's back.
func userDB(t *testing.T, dataDir string, id int) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open("file:" + filepath.Join(dataDir, "users", strconv.Itoa(id), "mail.db") + "?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSyncStorageErrorAfterCommand: the store fails (for real: a table the
// change query needs is gone from the user's database) after a command
// succeeded. Before, the session ended without a tagged response and the
// error was logged at debug level. Now the client gets its tagged OK (the
// STORE did happen), the failure is logged at error level, the updates are
// retried at the next command, and the session goes on once the database
// is whole again.
func TestSyncStorageErrorAfterCommand(t *testing.T) {
	needSQLite(t)
	dir := t.TempDir()
	logs := &logRecorder{}
	ts := newTestServer(t, serverOpts{insecureAuth: true, dataDir: dir, mutate: func(c *server.Config) {
		c.Logger = slog.New(logs)
	}})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("LOGIN alice secret")
	c.appendMsg("INBOX", "", crlf("Subject: one\n\nbody\n"))
	c.appendMsg("INBOX", "", crlf("Subject: two\n\nbody\n"))
	c.ok("SELECT INBOX")

	db := userDB(t, dir, 1)
	if _, err := db.Exec(`ALTER TABLE expunged RENAME TO expunged_moved`); err != nil {
		t.Fatal(err)
	}
	// The APPEND commits; the mailbox index then catches up with the store,
	// which fails. (An APPEND's own delta the index applies without
	// asking, except when it brings a keyword new to the mailbox, as here.)
	msg := crlf("Subject: three\n\nbody\n")
	u, tagged := c.do(fmt.Sprintf("APPEND INBOX (NewKeyword1) {%d+}\r\n%s", len(msg), msg))
	if !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("APPEND before a failing sync: got %q (untagged %q)", tagged, u)
	}
	if got := logs.find("ERROR"); len(got) == 0 {
		t.Fatalf("no error logged for the failed sync; log:\n%s", strings.Join(logs.find(""), "\n"))
	} else if !strings.Contains(got[0], "expunged") {
		t.Errorf("error log does not carry the cause: %q", got[0])
	}
	// Another session changes the mailbox: this one still answers, and
	// reports the change once the table is back.
	c2 := ts.dial()
	c2.ok("LOGIN alice secret")
	c2.ok("SELECT INBOX")
	c2.ok(`STORE 2 +FLAGS (\Seen)`)
	c.ok("NOOP") // sync fails again: still OK, still connected
	if _, err := db.Exec(`ALTER TABLE expunged_moved RENAME TO expunged`); err != nil {
		t.Fatal(err)
	}
	u = c.ok("NOOP")
	hasLine(t, u, `* 2 FETCH (FLAGS (\Seen \Recent))`)
	c.ok("FETCH 1:2 (FLAGS)")
}

// TestSyncStorageErrorEndsBrokenSession: when the user's database is
// damaged beyond use (its file overwritten), the command that already
// succeeded still gets its tagged answer, and the session ends with
// "* BYE" because it cannot go on.
func TestSyncStorageErrorEndsBrokenSession(t *testing.T) {
	needSQLite(t)
	dir := t.TempDir()
	logs := &logRecorder{}
	// No background text indexer: its reads and writes of the file would
	// decide which pages the server's connections still have cached when
	// the file is overwritten below.
	ts := newTestServer(t, serverOpts{insecureAuth: true, dataDir: dir, noTextIndexer: true, mutate: func(c *server.Config) {
		c.Logger = slog.New(logs)
	}})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("LOGIN alice secret")
	c.appendMsg("INBOX", "", crlf("Subject: one\n\nbody\n"))
	c.ok("SELECT INBOX")
	c2 := ts.dial()
	c2.ok("LOGIN alice secret")
	c2.ok("SELECT INBOX")
	// c's view moves ahead of c2's, so c's next change query is its own
	// (not one shared with c2's session).
	c.ok(`STORE 1 +FLAGS (\Flagged)`)
	c2.ok(`STORE 1 +FLAGS (\Seen)`) // a change c has not seen yet

	// Move everything from the write-ahead log into the database file,
	// then overwrite the file's first pages (header and schema) with
	// garbage.
	if _, err := userDB(t, dir, 1).Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "users", "1", "mail.db")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("garbage!", 1024)), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// c2's change is already in the mailbox index, which would answer c
	// from memory; a later change signalled by another process (as tern
	// deliver's notify socket does) makes the index ask the broken
	// database.
	ts.index.MailboxChanged("alice", 1, 1000)

	u, tagged := c.do("NOOP")
	if !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("NOOP: got %q (untagged %q)", tagged, u)
	}
	bye := false
	for _, l := range u {
		if strings.HasPrefix(l, "* BYE") {
			bye = true
		}
	}
	if !bye {
		t.Fatalf("no BYE for a session whose database is unusable; untagged %q", u)
	}
	waitClosed(t, c.conn, 2*time.Second)
	if got := logs.find("ERROR"); len(got) == 0 {
		t.Fatal("no error logged")
	}
}

// TestSyncStorageErrorInIdle: a change query failing during IDLE is logged
// and retried (no busy loop, IDLE goes on), DONE still gets its tagged OK,
// and a store that keeps failing ends the session after maxSyncFailures
// commands in a row, with the last command's tagged answer.
func TestSyncStorageErrorInIdle(t *testing.T) {
	needSQLite(t)
	dir := t.TempDir()
	logs := &logRecorder{}
	ts := newTestServer(t, serverOpts{insecureAuth: true, dataDir: dir, mutate: func(c *server.Config) {
		c.Logger = slog.New(logs)
	}})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("LOGIN alice secret")
	c.appendMsg("INBOX", "", crlf("Subject: one\n\nbody\n"))
	c.ok("SELECT INBOX")
	c2 := ts.dial()
	c2.ok("LOGIN alice secret")
	c2.ok("SELECT INBOX")
	c.ok(`STORE 1 +FLAGS (\Flagged)`) // views differ: no shared change query

	db := userDB(t, dir, 1)
	if _, err := db.Exec(`ALTER TABLE expunged RENAME TO expunged_moved`); err != nil {
		t.Fatal(err)
	}
	c.write("I1 IDLE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	c2.appendMsg("INBOX", "NewKeyword1", crlf("Subject: new\n\nbody\n")) // a new keyword: the index must ask the store
	mine := func() []string {                                            // errors of c's session
		var out []string
		for _, l := range logs.find("ERROR") {
			if strings.Contains(l, "remote="+c.conn.LocalAddr().String()) {
				out = append(out, l)
			}
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(mine()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failing sync in IDLE was not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(mine()); n != 1 {
		t.Fatalf("%d errors logged while idling; want 1 (retried only at the next change):\n%s", n, strings.Join(logs.find(""), "\n"))
	}
	c.write("DONE\r\n")
	u, tagged := c.readUntil("I1")
	if !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("DONE: %q (untagged %q)", tagged, u)
	}
	// Third failure in a row: BYE, then the tagged answer.
	u, tagged = c.do("NOOP")
	if !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("NOOP: %q (untagged %q)", tagged, u)
	}
	if len(u) == 0 || !strings.HasPrefix(u[len(u)-1], "* BYE") {
		t.Fatalf("no BYE after %d failures in a row; untagged %q", 3, u)
	}
	waitClosed(t, c.conn, 2*time.Second)
	if got := mine(); len(got) != 3 || !strings.Contains(got[2], "ending_session=true") {
		t.Fatalf("error log:\n%s", strings.Join(got, "\n"))
	}
}

// TestNotifyStorageErrorBetweenCommands: a session with NOTIFY waits for
// commands and the store fails to provide the change it was signalled.
// Before, the session ended at once with "* BYE". Now the failure is
// logged at error level, delivery is retried about once a second (not at
// every signal), the session answers commands meanwhile, and the events
// arrive once the database is whole again.
func TestNotifyStorageErrorBetweenCommands(t *testing.T) {
	needSQLite(t)
	dir := t.TempDir()
	logs := &logRecorder{}
	ts := newTestServer(t, serverOpts{insecureAuth: true, dataDir: dir, mutate: func(c *server.Config) {
		c.Logger = slog.New(logs)
	}})
	ts.addUser("alice", "secret")
	a := ts.dial()
	a.ok("LOGIN alice secret")
	a.appendMsg("INBOX", "", crlf("Subject: one\n\nbody\n"))
	a.ok("SELECT INBOX")
	a.ok(`STORE 1 +FLAGS (\Flagged)`) // a view of its own: the index must ask the store
	a.ok("NOTIFY SET (SELECTED (MessageNew (UID) MessageExpunge FlagChange))")
	b := ts.dial()
	b.ok("LOGIN alice secret")

	db := userDB(t, dir, 1)
	if _, err := db.Exec(`ALTER TABLE expunged RENAME TO expunged_moved`); err != nil {
		t.Fatal(err)
	}
	b.appendMsg("INBOX", "NewKeyword1", crlf("Subject: two\n\nbody\n")) // a new keyword: the index must ask the store
	mine := func() []string {
		var out []string
		for _, l := range logs.find("ERROR sending NOTIFY") {
			if strings.Contains(l, "remote="+a.conn.LocalAddr().String()) {
				out = append(out, l)
			}
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(mine()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the failing NOTIFY delivery was not logged:\n%s", strings.Join(logs.find(""), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := time.Now()
	b.appendMsg("INBOX", "NewKeyword2", crlf("Subject: three\n\nbody\n")) // signals again: no retry storm
	time.Sleep(300 * time.Millisecond)
	// One failure per retry interval at most (a slow machine may reach
	// the next retry), not one per signal.
	if n, most := len(mine()), 1+int(time.Since(first)/time.Second); n > most {
		t.Fatalf("%d errors in %v; want at most %d (retried once a second):\n%s", n, time.Since(first), most, strings.Join(mine(), "\n"))
	}
	if got := mine()[0]; !strings.Contains(got, "ending_session=false") || !strings.Contains(got, "expunged") {
		t.Fatalf("error log: %q", got)
	}
	if _, err := db.Exec(`ALTER TABLE expunged_moved RENAME TO expunged`); err != nil {
		t.Fatal(err)
	}
	// The events arrive with the next retry, without a command.
	a.expectLines(`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft NewKeyword1 NewKeyword2)`,
		"* 3 EXISTS", "* 3 RECENT", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)")
	a.ok("NOOP")
}
