package server_test

import (
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/server"
)

// RFC 8437: after UNAUTHENTICATE the connection is in the not
// authenticated state; a login as another user sees only that user's
// mail and none of the first session's state (selected mailbox, ENABLEd
// extensions, NOTIFY), and the first user's connection slot is free.
func TestUnauthenticateSwitchesUser(t *testing.T) {
	ts := newTestServer(t, serverOpts{mutate: func(c *server.Config) {
		c.MaxUserIPConns = 1
	}})
	ts.addUser("alice", "secret")
	ts.addUser("bob", "secret")
	c := ts.login("alice", "secret")
	if !strings.Contains(c.greeting, " UNAUTHENTICATE") {
		t.Fatalf("greeting lacks UNAUTHENTICATE: %q", c.greeting)
	}
	c.appendMsg("INBOX", `\Flagged`, simpleMsg)
	c.appendMsg("INBOX", "", simpleMsg)
	hasLine(t, c.ok("ENABLE QRESYNC UTF8=ACCEPT"), "* ENABLED QRESYNC UTF8=ACCEPT")
	hasLine(t, c.ok("SELECT INBOX"), "* 2 EXISTS")
	c.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")

	// alice holds the one slot this address has for her.
	other := ts.dialTLS()
	other.expect("LOGIN alice secret", "NO [LIMIT]")

	_, tagged := c.do("UNAUTHENTICATE")
	if !strings.HasPrefix(tagged, "OK [CAPABILITY ") || !strings.Contains(tagged, "AUTH=PLAIN") || strings.Contains(tagged, "QRESYNC") {
		t.Fatalf("UNAUTHENTICATE: %q", tagged)
	}
	c.expect("FETCH 1 FLAGS", "BAD")
	c.expect("SELECT INBOX", "BAD")
	c.expect("UNAUTHENTICATE", "BAD")

	// Her slot is free again.
	other.ok("LOGIN alice secret")

	c.ok("LOGIN bob secret")
	u := c.ok("SELECT INBOX")
	hasLine(t, u, "* 0 EXISTS")
	for _, l := range u {
		if strings.HasPrefix(l, "* OK [CLOSED]") {
			t.Fatalf("bob's SELECT reported alice's mailbox closed: %q", u)
		}
	}
	// ENABLE was reset: QRESYNC is enabled anew for bob.
	hasLine(t, c.ok("ENABLE QRESYNC"), "* ENABLED QRESYNC")
	// alice's NOTIFY registration is gone: her new mail is not reported.
	other.appendMsg("INBOX", "", simpleMsg)
	c.quiet()
	hasLine(t, c.ok("STATUS INBOX (MESSAGES)"), "* STATUS INBOX (MESSAGES 0)")
	c.appendMsg("INBOX", "", simpleMsg)
	hasLine(t, c.ok("UID FETCH 1:* FLAGS"), `* 1 FETCH (UID 1 FLAGS (\Recent))`)
}

// UNAUTHENTICATE before login is BAD; with arguments it is BAD too.
func TestUnauthenticateNotAuthenticated(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.dialTLS()
	c.expect("UNAUTHENTICATE", "BAD")
	c.ok("LOGIN alice secret")
	c.expect("UNAUTHENTICATE now", "BAD")
	c.ok("UNAUTHENTICATE")
	c.ok("LOGIN alice secret")
}
