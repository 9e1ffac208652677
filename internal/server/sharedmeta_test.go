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
