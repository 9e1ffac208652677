package server_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// sharedFolder creates shared folder name (as tern shared create does)
// with the ACL entries given as identifier, rights pairs.
func (ts *testServer) sharedFolder(name string, acl ...string) {
	ts.t.Helper()
	ctx := ts.t.Context()
	if err := ts.store.CreateUser(ctx, store.SharedOwner, ""); err != nil && !errors.Is(err, store.ErrUserExists) {
		ts.t.Fatal(err)
	}
	a, err := ts.store.Account(ctx, store.SharedOwner)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer a.Close()
	if err := a.CreateMailbox(ctx, name, ""); err != nil {
		ts.t.Fatal(err)
	}
	for i := 0; i+1 < len(acl); i += 2 {
		if _, err := a.SetACL(ctx, name, acl[i], store.FlagsReplace, acl[i+1]); err != nil {
			ts.t.Fatal(err)
		}
	}
}

// sharedFolderAppend appends msg to shared folder name.
func (ts *testServer) sharedFolderAppend(name, msg string) {
	ts.t.Helper()
	a, err := ts.store.Account(ts.t.Context(), store.SharedOwner)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Append(ts.t.Context(), name, []store.NewMessage{{Body: []byte(msg)}}); err != nil {
		ts.t.Fatal(err)
	}
}

// The Shared Folders namespace (RFC 2342): mailboxes of no user, named
// "Shared Folders/<name>", seen and used as their ACLs say; \Seen per
// user there too; the account behind them is reached no other way.
func TestSharedFolders(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("bob", "hunter2")
	ts.addUser("carol", "pw")
	bob := ts.login("bob", "hunter2")
	carol := ts.login("carol", "pw")
	hasLine(t, bob.ok("NAMESPACE"), `* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))`)
	bob.expect(`SELECT "Shared Folders/News"`, "NO [NONEXISTENT]")

	ts.sharedFolder("News", store.Anyone, "lr")
	ts.sharedFolder("Team", "bob", "lrswipte", "carol", "lrs")
	ts.sharedFolder("Hidden")
	u := bob.ok(`LIST "" "*"`)
	hasLine(t, u, `* LIST (\Noselect \HasChildren) "/" "Shared Folders"`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" "Shared Folders/News"`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" "Shared Folders/Team"`)
	if all := strings.Join(u, "\n"); strings.Contains(all, "Hidden") || strings.Contains(all, "Other Users") || strings.Contains(all, "#shared") {
		t.Fatalf("LIST shows what bob may not see: %q", u)
	}
	u = bob.ok(`LIST "Shared Folders/" "%" RETURN (MYRIGHTS)`)
	hasLine(t, u, `* MYRIGHTS "Shared Folders/Team" lrswipted`)
	hasLine(t, u, `* MYRIGHTS "Shared Folders/News" lr`)

	// bob writes to Team; carol reads it with her own \Seen.
	bob.appendMsg(`"Shared Folders/Team"`, `\Flagged \Seen`, crlf("Subject: plan\n\nthe plan\n"))
	hasLine(t, bob.expect(`SELECT "Shared Folders/Team"`, "OK [READ-WRITE]"), "* 1 EXISTS")
	hasLine(t, bob.ok("FETCH 1 FLAGS"), `* 1 FETCH (FLAGS (\Flagged \Seen \Recent))`)
	u = carol.expect(`SELECT "Shared Folders/Team"`, "OK [READ-WRITE]")
	hasLine(t, u, "* OK [UNSEEN 1] First unseen")
	hasLine(t, carol.ok("FETCH 1 FLAGS"), `* 1 FETCH (FLAGS (\Flagged))`)
	carol.expect(`APPEND "Shared Folders/Team" {3+}`+"\r\nx\r\n", "NO [NOPERM]")
	hasLine(t, carol.ok(`STATUS "Shared Folders/News" (MESSAGES)`), `* STATUS "Shared Folders/News" (MESSAGES 0)`)
	carol.expect(`APPEND "Shared Folders/News" {3+}`+"\r\nx\r\n", "NO [NOPERM]")

	// Quota of a shared folder is the shared folders' root.
	hasLine(t, bob.ok(`GETQUOTAROOT "Shared Folders/Team"`), `* QUOTAROOT "Shared Folders/Team" "Shared Folders"`)

	// Not through Other Users, not by logging in, not by guessing.
	for _, name := range []string{`"Other Users/#shared/News"`, `"Shared Folders/Hidden"`, `"Shared Folders"`, `"Shared Folders/Nope"`} {
		bob.expect("EXAMINE "+name, "NO [NONEXISTENT]")
		bob.expect("STATUS "+name+" (MESSAGES)", "NO [NONEXISTENT]")
	}
	c := ts.dialTLS()
	c.expect(`LOGIN "#shared" ""`, "NO")
	c.expect(`LOGIN "#shared" "x"`, "NO [AUTHENTICATIONFAILED]")
}

// A drop box (RFC 4314 §4): with "i" alone a user APPENDs and COPYs into
// a mailbox by name, learning nothing else of it: no LIST entry, no
// APPENDUID/COPYUID, every other command answers as for a missing
// mailbox, and flags the user may not set are dropped.
func TestSharedDropBox(t *testing.T) {
	ts, alice, bob := shareSetup(t, serverOpts{})
	alice.ok("CREATE Inbound")
	alice.ok("SETACL Inbound bob i")
	ts.sharedFolder("Suggestions", store.Anyone, "i")
	for _, box := range []string{`"Other Users/alice/Inbound"`, `"Shared Folders/Suggestions"`} {
		if _, tagged := bob.do("APPEND " + box + ` (\Seen \Flagged) {3+}` + "\r\nx\r\n"); tagged != "OK APPEND completed" {
			t.Fatalf("APPEND to drop box %s: %q", box, tagged)
		}
		bob.ok("SELECT INBOX")
		bob.appendMsg("INBOX", "", simpleMsg)
		if _, tagged := bob.do("COPY 1 " + box); tagged != "OK COPY completed" {
			t.Fatalf("COPY to drop box %s: %q", box, tagged)
		}
		bob.ok("UNSELECT")
		for _, cmd := range []string{"SELECT " + box, "EXAMINE " + box, "STATUS " + box + " (MESSAGES)", "MYRIGHTS " + box, "DELETE " + box} {
			bob.expect(cmd, "NO [NONEXISTENT]")
		}
		if u := bob.ok(`LIST "" "*"`); strings.Contains(strings.Join(u, "\n"), "Inbound") || strings.Contains(strings.Join(u, "\n"), "Suggestions") {
			t.Fatalf("LIST shows a drop box: %q", u)
		}
	}
	u := alice.ok("SELECT Inbound")
	hasLine(t, u, "* 2 EXISTS")
	if f := alice.ok("FETCH 1 FLAGS"); strings.Contains(f[0], `\Seen`) || strings.Contains(f[0], `\Flagged`) {
		t.Fatalf("the drop box kept flags bob may not set: %q", f)
	}
	// Without "i" the drop box is as missing as a mailbox that is not.
	alice.ok("SETACL Inbound bob p")
	bob.expect(`APPEND "Other Users/alice/Inbound" {3+}`+"\r\nx\r\n", "NO [TRYCREATE]")
	bob.expect(`APPEND "Other Users/alice/Nope" {3+}`+"\r\nx\r\n", "NO [TRYCREATE]")
}

// A SETACL reaches a session that has the mailbox selected at its next
// command: fewer rights make it read-only (READ-ONLY, PERMANENTFLAGS),
// more make it read-write again, and losing "r" ends it with BYE.
func TestSharedRightsChangeSelected(t *testing.T) {
	_, alice, bob := shareSetup(t, serverOpts{})
	alice.ok("SETACL Projects bob lrswite")
	bob.expect("SELECT "+shared, "OK [READ-WRITE]")
	bob.ok(`STORE 1 +FLAGS (\Answered)`)

	alice.ok("SETACL Projects bob lr")
	u := bob.ok("NOOP")
	hasLine(t, u, "* OK [READ-ONLY] Access rights changed")
	hasLine(t, u, "* OK [PERMANENTFLAGS ()] Read-only mailbox")
	bob.expect(`STORE 1 +FLAGS (\Answered)`, "NO [READ-ONLY]")
	bob.expect("EXPUNGE", "NO [READ-ONLY]")

	alice.ok("SETACL Projects bob lrs")
	u = bob.ok("NOOP")
	hasLine(t, u, "* OK [READ-WRITE] Access rights changed")
	hasLine(t, u, `* OK [PERMANENTFLAGS (\Seen)] Flags permitted`)
	bob.ok(`STORE 1 +FLAGS (\Seen)`)
	bob.expect(`STORE 1 +FLAGS (\Deleted)`, "NO [NOPERM]")
	if u := bob.ok("NOOP"); len(u) != 0 {
		t.Fatalf("NOOP with unchanged rights: %q", u)
	}

	alice.ok("SETACL Projects bob l")
	bob.write("T99 FETCH 1 FLAGS\r\n")
	if l := bob.readLine(); l != "* BYE Access to the selected mailbox was revoked" {
		t.Fatalf("FETCH after losing r: %q", l)
	}
}

// During IDLE on another user's mailbox, a change is told only to a
// session that may still read it: after losing "r" the next change ends
// the session with BYE instead of an EXISTS.
func TestSharedRightsChangeIdle(t *testing.T) {
	_, alice, bob := shareSetup(t, serverOpts{})
	alice.ok("SETACL Projects bob lrs")
	bob.ok("SELECT " + shared)
	bob.write("I1 IDLE\r\n")
	if l := bob.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("idle: %q", l)
	}
	alice.appendMsg("Projects", "", crlf("Subject: three\n\nnew\n"))
	if l := bob.readLine(); l != "* 3 EXISTS" {
		t.Fatalf("idle update: %q", l)
	}
	bob.readLine() // * 3 RECENT
	alice.ok("SETACL Projects bob l")
	alice.appendMsg("Projects", "", crlf("Subject: four\n\nnew\n"))
	if l := bob.readLine(); l != "* BYE Access to the selected mailbox was revoked" {
		t.Fatalf("idle update after losing r: %q", l)
	}
}
