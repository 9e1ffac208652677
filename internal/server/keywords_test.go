package server_test

import (
	"strings"
	"testing"
)

// TestNewKeywordAnnouncedBeforeFetch: a keyword another session added to
// the mailbox reaches this session in an untagged FLAGS before any FETCH
// that carries it, whether the FETCH answers this session's STORE, its
// FETCH, or reports another session's change.
func TestNewKeywordAnnouncedBeforeFetch(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	a := ts.login("alice", "pw")
	for range 3 {
		a.appendMsg("INBOX", "", crlf("Subject: k\n\nbody\n"))
	}
	a.ok("SELECT INBOX")
	b := ts.login("alice", "pw")
	b.ok("SELECT INBOX")
	c := ts.login("alice", "pw")
	c.ok("SELECT INBOX")

	a.ok("STORE 1 +FLAGS ($Label1)")
	flagsFirst(t, "STORE", b.ok("STORE 2 +FLAGS ($Label1)"), "$Label1")
	flagsFirst(t, "FETCH", c.ok("FETCH 2 (FLAGS)"), "$Label1")

	a.ok("STORE 3 +FLAGS ($Label2)")
	flagsFirst(t, "NOOP", b.ok("NOOP"), "$Label2")
	// Announced once: the next sync does not repeat it.
	for _, l := range b.ok("NOOP") {
		if strings.HasPrefix(l, "* FLAGS") {
			t.Fatalf("FLAGS sent again: %q", l)
		}
	}
}

// flagsFirst checks that the first line naming kw is an untagged FLAGS.
func flagsFirst(t *testing.T, what string, lines []string, kw string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(l, kw) {
			continue
		}
		if !strings.HasPrefix(l, "* FLAGS (") {
			t.Fatalf("%s: %s used before FLAGS announced it: %q", what, kw, lines)
		}
		return
	}
	t.Fatalf("%s: %s never appears: %q", what, kw, lines)
}
