package server_test

import (
	"strings"
	"testing"
)

// METADATA on another user's mailbox (RFC 5464 §3.3 with ACL): reading
// needs "l" and one of "rswip", writing /shared/ entries "w"; the owner's
// /private/ entries never show and cannot be written by others; a
// mailbox the user cannot see does not exist.
func TestSharedMetadata(t *testing.T) {
	_, alice, bob := shareSetup(t, serverOpts{})
	alice.ok(`SETMETADATA Projects (/private/comment "alice only" /shared/comment "team")`)
	bob.expect(`GETMETADATA `+shared+` /shared/comment`, "NO [NONEXISTENT]")
	bob.expect(`SETMETADATA `+shared+` (/shared/comment "x")`, "NO [NONEXISTENT]")

	alice.ok("SETACL Projects bob lr")
	u := bob.ok(`GETMETADATA ` + shared + ` (/private/comment /shared/comment)`)
	hasLine(t, u, `* METADATA "Other Users/alice/Projects" (/private/comment NIL /shared/comment "team")`)
	u = bob.ok(`GETMETADATA (DEPTH infinity) ` + shared + ` (/private /shared)`)
	if all := strings.Join(u, "\n"); strings.Contains(all, "alice only") || !strings.Contains(all, `"team"`) {
		t.Fatalf("GETMETADATA DEPTH infinity: %q", u)
	}
	u = bob.ok(`LIST "" "Other Users/alice/*" RETURN (METADATA (/private/comment /shared/comment))`)
	hasLine(t, u, `* METADATA "Other Users/alice/Projects" (/private/comment NIL /shared/comment "team")`)
	bob.expect(`SETMETADATA `+shared+` (/shared/comment "bob")`, "NO [NOPERM]")
	bob.expect(`SETMETADATA `+shared+` (/private/comment "bob")`, "NO [METADATA NOPRIVATE]")

	alice.ok("SETACL Projects bob lrw")
	bob.ok(`SETMETADATA ` + shared + ` (/shared/comment "from bob")`)
	hasLine(t, alice.ok(`GETMETADATA Projects (/private/comment /shared/comment)`),
		`* METADATA Projects (/private/comment "alice only" /shared/comment "from bob")`)
	bob.expect(`SETMETADATA `+shared+` (/private/comment "bob")`, "NO [METADATA NOPRIVATE]")

	// "l" alone is not enough (nor "r" alone: then l is missing).
	alice.ok("SETACL Projects bob l")
	bob.expect(`GETMETADATA `+shared+` /shared/comment`, "NO [NOPERM]")
	alice.ok("SETACL Projects bob r")
	bob.expect(`GETMETADATA `+shared+` /shared/comment`, "NO [NOPERM]")
	// The session's own server entries are unaffected.
	bob.ok(`SETMETADATA "" (/private/comment "bob's server note")`)
	hasLine(t, bob.ok(`GETMETADATA "" /private/comment`), `* METADATA "" (/private/comment "bob's server note")`)
}

// NOTIFY for other users' mailboxes (RFC 5465 SUBTREE, MAILBOXES,
// SUBSCRIBED under Other Users and Shared Folders): STATUS events of the
// mailboxes the user may read, with the user's own UNSEEN; nothing of
// mailboxes not shared, nothing more once the rights are gone.
func TestSharedNotifyOthers(t *testing.T) {
	ts, alice, bob := shareSetup(t, serverOpts{})
	ts.sharedFolder("News", "anyone", "lrs")
	alice.ok("SETACL Projects bob lrs")
	alice.ok("CREATE Private")
	u := bob.ok(`NOTIFY SET STATUS (SUBTREE ("Other Users/alice" "Shared Folders") (MessageNew MessageExpunge FlagChange))`)
	hasLine(t, u, `* STATUS "Other Users/alice/Projects" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY `+uidValidity(t, alice.ok("SELECT Projects"))+` HIGHESTMODSEQ 3)`)
	if len(u) != 2 || !strings.HasPrefix(u[1], `* STATUS "Shared Folders/News" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY `) {
		t.Fatalf("NOTIFY SET STATUS: %q", u)
	}

	// Events come between commands: each is read as the next line, so
	// a change that must stay silent is followed by one that must not.
	alice.appendMsg("Projects", "", crlf("Subject: three\n\nnew\n"))
	bob.expectLines(`* STATUS "Other Users/alice/Projects" (MESSAGES 3 UIDNEXT 4 UNSEEN 3)`)
	// alice's \Seen is not bob's: no event; bob's own \Seen (another
	// session) changes his UNSEEN.
	alice.ok(`STORE 1:3 +FLAGS (\Seen)`)
	bob2 := ts.login("bob", "hunter2")
	bob2.ok("SELECT " + shared)
	bob2.ok(`STORE 1 +FLAGS (\Seen)`)
	bob.expectLines(`* STATUS "Other Users/alice/Projects" (UNSEEN 2)`)
	// Mailboxes not shared with bob stay silent; Shared Folders speak.
	alice.appendMsg("Private", "", simpleMsg)
	alice.appendMsg("INBOX", "", simpleMsg)
	ts.sharedFolderAppend("News", simpleMsg)
	bob.expectLines(`* STATUS "Shared Folders/News" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)`)
	// Rights gone: nothing more of that mailbox.
	alice.ok("DELETEACL Projects bob")
	alice.appendMsg("Projects", "", simpleMsg)
	ts.sharedFolderAppend("News", simpleMsg)
	bob.expectLines(`* STATUS "Shared Folders/News" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)`)
	bob.quiet()
}
