package server_test

import (
	"strconv"
	"strings"
	"testing"
)

// noSeenLine fails if a line of lines reports \Seen.
func noSeenLine(t *testing.T, who string, lines []string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l, `\Seen`) {
			t.Fatalf("%s was told of another user's \\Seen: %q", who, lines)
		}
	}
}

// \Seen is per user on another user's mailbox (RFC 4314 §5.2): the
// owner's and each other user's are their own in FETCH, STORE, SEARCH,
// STATUS, SELECT, CONDSTORE and the updates of selected sessions, even
// though all of them share one mailbox index in the server.
func TestSharedSeenPerUser(t *testing.T) {
	ts, alice, bob := shareSetup(t, serverOpts{})
	ts.addUser("carol", "pw")
	carol := ts.login("carol", "pw")
	alice.ok("SETACL Projects bob lrswite")
	alice.ok("SETACL Projects carol lrs")
	alice.ok("SELECT Projects")
	alice.ok("FETCH 1 BODY[TEXT]") // alice reads message 1

	u := bob.ok("SELECT " + shared + " (CONDSTORE)")
	hasLine(t, u, "* OK [UNSEEN 1] First unseen")
	before := strconv.FormatUint(highestModSeq(t, u), 10)
	carol.ok("SELECT " + shared)
	bob2 := ts.login("bob", "hunter2")
	bob2.ok("SELECT " + shared)
	u = bob.ok("FETCH 1:2 FLAGS")
	hasLine(t, u, `* 1 FETCH (FLAGS ())`)
	noSeenLine(t, "bob", u)

	u = bob.ok("FETCH 2 BODY[TEXT]")
	if !strings.Contains(strings.Join(u, " "), `\Seen`) {
		t.Fatalf("bob's FETCH BODY[] did not set his \\Seen: %q", u)
	}
	hasLine(t, bob.ok("SEARCH SEEN"), "* SEARCH 2")
	hasLine(t, bob.ok("SEARCH UNSEEN"), "* SEARCH 1")

	// The others hear nothing of bob's \Seen; bob's other session does.
	noSeenLine(t, "alice", alice.ok("NOOP"))
	noSeenLine(t, "carol", carol.ok("NOOP"))
	hasLine(t, bob2.ok("NOOP"), `* 2 FETCH (FLAGS (\Flagged \Seen))`)
	hasLine(t, alice.ok("SEARCH UNSEEN"), "* SEARCH 2")
	noSeenLine(t, "alice", alice.ok("FETCH 2 FLAGS"))
	hasLine(t, carol.ok("SEARCH UNSEEN"), "* SEARCH 1 2")

	// Counters per user.
	hasLine(t, alice.ok("STATUS Projects (UNSEEN)"), "* STATUS Projects (UNSEEN 1)")
	hasLine(t, bob.ok("STATUS "+shared+" (UNSEEN)"), `* STATUS "Other Users/alice/Projects" (UNSEEN 1)`)
	hasLine(t, carol.ok("STATUS "+shared+" (UNSEEN)"), `* STATUS "Other Users/alice/Projects" (UNSEEN 2)`)
	hasLine(t, carol.ok("SELECT "+shared), "* OK [UNSEEN 1] First unseen")

	// CONDSTORE: bob's change is a change for bob only.
	u = bob.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE " + before + ")")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* 2 FETCH") {
		t.Fatalf("bob's CHANGEDSINCE %s: %q", before, u)
	}
	carol.ok("ENABLE CONDSTORE")
	if u = carol.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE " + before + ")"); len(u) != 0 {
		t.Fatalf("carol's CHANGEDSINCE %s: %q", before, u)
	}

	// STORE FLAGS replaces bob's flags: alice's \Seen stays hers.
	u = bob.ok(`STORE 1 FLAGS (\Answered \Seen)`)
	hasLine(t, u, `* 1 FETCH (UID 1 FLAGS (\Answered \Seen) MODSEQ (`+strconv.FormatUint(modseqOf(t, u[0]), 10)+`))`)
	bob.ok(`STORE 1 FLAGS (\Answered)`)
	hasLine(t, alice.ok("FETCH 1 FLAGS"), `* 1 FETCH (FLAGS (\Answered \Seen \Recent))`)
	hasLine(t, bob.ok("FETCH 1 FLAGS"), `* 1 FETCH (FLAGS (\Answered))`)

	// APPEND with \Seen: the appender's only.
	bob.appendMsg(shared, `\Seen`, crlf("Subject: three\n\nfrom bob\n"))
	hasLine(t, bob.ok("SEARCH SEEN"), "* SEARCH 2 3")
	hasLine(t, alice.ok("SEARCH SEEN"), "* SEARCH 1")
}
