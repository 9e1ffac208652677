package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
)

func TestMain(m *testing.M) {
	os.Exit(s3test.Wrap(func() int { return pgtest.Main(m) }))
}

// imapConn is a line-level IMAP client for these tests.
type imapConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialIMAP(t testing.TB, addr string) *imapConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ic := &imapConn{t: t, c: c, br: bufio.NewReader(c)}
	if line := ic.line(); !strings.HasPrefix(line, "* OK") {
		t.Fatalf("greeting %q", line)
	}
	return ic
}

// line reads one response line (with a generous deadline: a stuck
// server fails the test instead of hanging it).
func (ic *imapConn) line() string {
	ic.t.Helper()
	ic.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	l, err := ic.br.ReadString('\n')
	if err != nil {
		ic.t.Fatalf("read: %v", err)
	}
	return l
}

// cmd sends a tagged command and returns the lines up to its tagged
// answer, failing unless it is OK.
func (ic *imapConn) cmd(tag, format string, args ...any) []string {
	ic.t.Helper()
	fmt.Fprintf(ic.c, tag+" "+format+"\r\n", args...)
	var lines []string
	for {
		l := ic.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				ic.t.Fatalf("%s: %q", tag, lines)
			}
			return lines
		}
	}
}

// TestServePostgresTwoNodes: "tern user add --store postgres://..." makes
// a user that two "tern serve" nodes on the same database both serve; a
// session IDLE on node A sees a message APPENDed through node B, and
// each node reads what the other wrote; tern deliver on the same
// database wakes the idler too.
func TestServePostgresTwoNodes(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--store", url, "--data", t.TempDir()); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if r := runT(t, "", "user", "list", "--store", url); r.code != 0 || r.stdout != "alice\n" {
		t.Fatalf("user list: %+v", r)
	}
	if r := runT(t, "", "check", "--store", url); r.code != 0 || !strings.Contains(r.stdout, "store is consistent") {
		t.Fatalf("check: %+v", r)
	}
	// (TestBackupRestorePostgres tests backups of a postgres store.)
	if r := runT(t, "", "backup", t.TempDir()+"/b", "--store", url); r.code != 0 || !strings.Contains(r.stdout, "backup of the postgres store complete") {
		t.Fatalf("backup of a postgres store: %+v", r)
	}
	node := func(extra ...string) (string, func()) {
		args := append([]string{"--store", url, "--data", t.TempDir(), "--listen-imap", "127.0.0.1:0",
			"--listen-imaps", "", "--listen-lmtp", "", "--listen-admin", "", "--insecure-auth"}, extra...)
		addrs, _, stop := startServe(t, 1, args...)
		return addrs["imap"], stop
	}
	// Node A reads bodies through --read-store, here the database itself
	// (a replica that is never behind; postgres TestReplica lags one).
	addrA, stopA := node("--read-store", url)
	defer stopA()
	addrB, stopB := node()
	defer stopB()

	idler := dialIMAP(t, addrA)
	idler.cmd("a1", "LOGIN alice pw-alice")
	idler.cmd("a2", "SELECT INBOX")
	fmt.Fprintf(idler.c, "a3 IDLE\r\n")
	if l := idler.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}

	writer := dialIMAP(t, addrB)
	writer.cmd("b1", "LOGIN alice pw-alice")
	msg := "Subject: across nodes\r\n\r\nhello\r\n"
	fmt.Fprintf(writer.c, "b2 APPEND INBOX {%d}\r\n", len(msg))
	if l := writer.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND continuation: %q", l)
	}
	fmt.Fprintf(writer.c, "%s\r\n", msg)
	for l := writer.line(); !strings.HasPrefix(l, "b2 "); l = writer.line() {
	}

	// The idler on the other node hears of it.
	for {
		l := idler.line()
		if strings.TrimSpace(l) == "* 1 EXISTS" {
			break
		}
	}
	fmt.Fprintf(idler.c, "DONE\r\n")
	for l := idler.line(); !strings.HasPrefix(l, "a3 "); l = idler.line() {
	}
	lines := idler.cmd("a4", "FETCH 1 BODY[]")
	if !strings.Contains(strings.Join(lines, ""), "hello") {
		t.Fatalf("node A's FETCH of node B's message: %q", lines)
	}
	// tern deliver, a process of its own on the same database, wakes the
	// idler too (through PostgreSQL, no notify socket).
	fmt.Fprintf(idler.c, "a6 IDLE\r\n")
	if l := idler.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	if r := runT(t, "Subject: delivered\r\n\r\nby deliver\r\n", "deliver", "--user", "alice", "--store", url, "--data", t.TempDir()); r.code != 0 {
		t.Fatalf("deliver: %+v", r)
	}
	for l := idler.line(); strings.TrimSpace(l) != "* 2 EXISTS"; l = idler.line() {
	}
	fmt.Fprintf(idler.c, "DONE\r\n")
	for l := idler.line(); !strings.HasPrefix(l, "a6 "); l = idler.line() {
	}
	// And the other way round: a flag set through A shows through B.
	idler.cmd("a5", "STORE 1 +FLAGS (\\Flagged)")
	writer.cmd("b3", "SELECT INBOX")
	if lines := writer.cmd("b4", "FETCH 1 FLAGS"); !strings.Contains(strings.Join(lines, ""), "\\Flagged") {
		t.Fatalf("node B's flags after a STORE through A: %q", lines)
	}
}
