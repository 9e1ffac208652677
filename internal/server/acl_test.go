package server_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/server"
)

// The examples of RFC 4314 §2.1.1, §3 and §5.1.1, on a mailbox of the
// session's own (the owner has every right and is listed first).
func TestACLRFCExamples(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")

	caps := strings.Join(a.ok("CAPABILITY"), " ")
	for _, want := range []string{" ACL ", " RIGHTS=texk ", " LIST-MYRIGHTS"} {
		if !strings.Contains(caps+" ", want) {
			t.Fatalf("capability lacks %q: %s", want, caps)
		}
	}
	a.ok("CREATE INBOX/Drafts")
	// §3.1: + adds, the virtual c and d expand (c = k, d = x t e) and
	// come back whenever one of their members is granted.
	a.ok("SETACL INBOX/Drafts Fred rwipslxetad")
	a.ok("SETACL INBOX/Drafts Chris lrswi")
	u := a.ok("GETACL INBOX/Drafts")
	hasLine(t, u, "* ACL INBOX/Drafts alice lrswipkxteacd Chris lrswi Fred lrswipxtead")
	a.ok("SETACL INBOX/Drafts Chris +cda")
	u = a.ok("GETACL INBOX/Drafts")
	hasLine(t, u, "* ACL INBOX/Drafts alice lrswipkxteacd Chris lrswikxteacd Fred lrswipxtead")
	a.expect("SETACL INBOX/Drafts John lrQswicda", "BAD Uppercase rights are not allowed")
	a.expect("SETACL INBOX/Drafts John lrqswicda", "BAD")
	a.expect("SETACL INBOX/Drafts John lr7", "BAD")
	a.ok("SeTacl INBOX/Drafts David lrswida")
	a.ok("Setacl INBOX/Drafts Byron lrswikda")
	u = a.ok("getAcl INBOX/Drafts")
	hasLine(t, u, "* ACL INBOX/Drafts alice lrswipkxteacd Byron lrswikxteacd Chris lrswikxteacd David lrswixtead Fred lrswipxtead")
	a.ok("SETACL INBOX/Drafts Chris -wxa")
	// §3.2: DELETEACL removes the identifier's entry.
	a.ok("DeleteAcl INBOX/Drafts Fred")
	u = a.ok("GETACL INBOX/Drafts")
	hasLine(t, u, "* ACL INBOX/Drafts alice lrswipkxteacd Byron lrswikxteacd Chris lrsiktecd David lrswixtead")
	a.ok("SETACL INBOX/Drafts David \"\"")
	u = a.ok("GETACL INBOX/Drafts")
	hasLine(t, u, "* ACL INBOX/Drafts alice lrswipkxteacd Byron lrswikxteacd Chris lrsiktecd")
	// §3.4, §3.5: LISTRIGHTS (nothing tied, c and d listed alone) and
	// MYRIGHTS.
	u = a.ok("LISTRIGHTS INBOX/Drafts smith")
	hasLine(t, u, `* LISTRIGHTS INBOX/Drafts smith "" l r s w i p k x t e a c d`)
	u = a.ok("LISTRIGHTS INBOX/Drafts alice")
	hasLine(t, u, `* LISTRIGHTS INBOX/Drafts alice lrswipkxteacd`)
	u = a.ok("MYRIGHTS INBOX")
	hasLine(t, u, "* MYRIGHTS INBOX lrswipkxteacd")
	// The owner's rights are implicit; negative rights are not offered.
	a.expect("SETACL INBOX/Drafts alice lr", "NO [CANNOT]")
	a.expect("DELETEACL INBOX/Drafts alice", "NO [CANNOT]")
	a.expect("SETACL INBOX/Drafts -Fred w", "NO [CANNOT]")
	a.expect(`SETACL INBOX/Drafts "" w`, "BAD")
	a.expect("GETACL Nope", "NO [NONEXISTENT]")
	a.expect("MYRIGHTS Nope", "NO [NONEXISTENT]")
	// RFC 8440: LIST RETURN (MYRIGHTS).
	u = a.ok(`LIST "" "INBOX*" RETURN (MYRIGHTS)`)
	hasLine(t, u, "* MYRIGHTS INBOX/Drafts lrswipkxteacd")
	// RFC 2342: NAMESPACE with the other users' namespace.
	u = a.ok("NAMESPACE")
	hasLine(t, u, `* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))`)
}

// shareSetup makes alice (with a folder Projects holding two messages)
// and bob, both logged in.
func shareSetup(t *testing.T, o serverOpts) (ts *testServer, alice, bob *client) {
	ts = newTestServer(t, o)
	ts.addUser("alice", "secret")
	ts.addUser("bob", "hunter2")
	alice = ts.login("alice", "secret")
	bob = ts.login("bob", "hunter2")
	alice.ok("CREATE Projects")
	alice.appendMsg("Projects", "", crlf("Subject: one\n\nfirst message\n"))
	alice.appendMsg("Projects", `\Flagged`, crlf("Subject: two\n\nsecond message\n"))
	return ts, alice, bob
}

const shared = `"Other Users/alice/Projects"`

// bob with "lr" reads alice's folder but changes nothing; with "lrswite"
// he can; CREATE, DELETE and quota follow the owner.
func TestSharedReadWrite(t *testing.T) {
	ts, alice, bob := shareSetup(t, serverOpts{})
	bob.expect("SELECT "+shared, "NO [NONEXISTENT]")
	alice.ok("SETACL Projects bob lr")

	u := bob.ok(`LIST "" "*"`)
	hasLine(t, u, `* LIST (\Noselect \HasChildren) "/" "Other Users"`)
	hasLine(t, u, `* LIST (\Noselect \HasChildren) "/" "Other Users/alice"`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" "Other Users/alice/Projects"`)
	u = bob.ok(`LIST "Other Users/" "%"`)
	if len(u) != 1 || u[0] != `* LIST (\Noselect \HasChildren) "/" "Other Users/alice"` {
		t.Fatalf("LIST Other Users/%%: %q", u)
	}
	u = bob.ok(`LIST "" "Other Users/alice/*" RETURN (MYRIGHTS STATUS (MESSAGES))`)
	hasLine(t, u, `* MYRIGHTS "Other Users/alice/Projects" lr`)
	hasLine(t, u, `* STATUS "Other Users/alice/Projects" (MESSAGES 2)`)
	u = bob.ok("STATUS " + shared + " (MESSAGES UNSEEN)")
	hasLine(t, u, `* STATUS "Other Users/alice/Projects" (MESSAGES 2 UNSEEN 2)`)
	u = bob.ok("MYRIGHTS " + shared)
	hasLine(t, u, `* MYRIGHTS "Other Users/alice/Projects" lr`)
	bob.expect("GETACL "+shared, "NO [NOPERM]")
	bob.expect("SETACL "+shared+" bob +a", "NO [NOPERM]")

	// Read-only: "lr" grants none of i, e, s, w, t (RFC 4314 §5.2).
	u = bob.expect("SELECT "+shared, "OK [READ-ONLY]")
	hasLine(t, u, "* 2 EXISTS")
	hasLine(t, u, "* OK [PERMANENTFLAGS ()] Read-only mailbox")
	u = bob.ok("FETCH 1:2 (FLAGS BODY[TEXT])")
	if len(u) != 2 || !strings.Contains(u[0], "first message") || !strings.Contains(u[1], `\Flagged`) {
		t.Fatalf("FETCH: %q", u)
	}
	u = bob.ok("SEARCH TEXT second")
	hasLine(t, u, "* SEARCH 2")
	bob.expect(`STORE 1 +FLAGS (\Deleted)`, "NO [READ-ONLY]")
	bob.expect("EXPUNGE", "NO [READ-ONLY]")
	bob.expect(`MOVE 1 INBOX`, "NO [READ-ONLY]")
	u = bob.expect("COPY 1:2 INBOX", "OK [COPYUID")
	_ = u
	bob.expect("APPEND "+shared+" {3+}\r\nx\r\n", "NO [NOPERM]")
	bob.expect("CREATE \"Other Users/alice/Projects/Sub\"", "NO [NOPERM]")
	bob.expect("DELETE "+shared, "NO [NOPERM]")
	bob.ok("CLOSE")
	u = bob.ok("STATUS INBOX (MESSAGES)")
	hasLine(t, u, "* STATUS INBOX (MESSAGES 2)")

	// "lrswite": read-write, every flag, insert, expunge.
	alice.ok("SETACL Projects bob lrswite")
	u = bob.expect("SELECT "+shared, "OK [READ-WRITE]")
	hasLine(t, u, `* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`)
	u = bob.ok("FETCH 1 BODY[TEXT]")
	if !strings.Contains(strings.Join(u, " "), `\Seen`) {
		t.Fatalf("FETCH BODY[] should set \\Seen with s: %q", u)
	}
	bob.ok(`STORE 1 +FLAGS (\Deleted $Done)`)
	bob.ok("EXPUNGE")
	bob.appendMsg(shared, `\Seen \Answered`, crlf("Subject: three\n\nfrom bob\n"))
	u = alice.ok("SELECT Projects")
	hasLine(t, u, "* 2 EXISTS")
	u = alice.ok("FETCH 1:2 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	if all := strings.Join(u, "\n"); !strings.Contains(all, "Subject: two") || !strings.Contains(all, "Subject: three") ||
		!strings.Contains(all, `\Answered`) {
		t.Fatalf("alice's folder after bob's changes: %q", u)
	}
	alice.ok("UNSELECT")

	// "lrs": only \Seen; other flags are dropped, FLAGS replacement is
	// refused, APPEND keeps only the flags allowed; COPY in needs "i".
	alice.ok("SETACL Projects bob lrsi")
	bob.ok("SELECT " + shared)
	bob.ok(`STORE 2 -FLAGS (\Seen)`)
	u = bob.ok(`STORE 2 +FLAGS (\Seen \Flagged)`)
	if all := strings.Join(u, " "); !strings.Contains(all, `\Seen`) || strings.Contains(all, `\Flagged`) {
		t.Fatalf("STORE with s only: %q", u)
	}
	bob.expect(`STORE 1 +FLAGS (\Flagged)`, "NO [NOPERM]")
	bob.expect(`STORE 1 FLAGS (\Seen)`, "NO [NOPERM]")
	bob.expect("EXPUNGE", "NO [NOPERM]")
	bob.ok("UNSELECT")
	bob.ok("SELECT INBOX")
	bob.expect("COPY 1 "+shared, "OK [COPYUID")
	bob.ok(`STORE 1 +FLAGS (\Flagged \Deleted)`)
	bob.expect("COPY 1 "+shared, "OK [COPYUID")
	u = alice.ok("EXAMINE Projects")
	hasLine(t, u, "* 4 EXISTS")
	u = alice.ok("FETCH 4 FLAGS")
	if strings.Contains(u[0], `\Flagged`) || strings.Contains(u[0], `\Deleted`) {
		t.Fatalf("COPY kept flags bob may not set: %q", u)
	}

	// "k" lets bob create below the folder (the new one inherits the ACL,
	// so he sees it); "x" lets him delete it.
	alice.ok("SETACL Projects bob lrk")
	bob.ok("CREATE \"Other Users/alice/Projects/Sub\"")
	u = bob.ok(`LIST "" "Other Users/alice/*"`)
	hasLine(t, u, `* LIST (\HasChildren) "/" "Other Users/alice/Projects"`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" "Other Users/alice/Projects/Sub"`)
	bob.expect("DELETE \"Other Users/alice/Projects/Sub\"", "NO [NOPERM]")
	alice.ok("SETACL Projects/Sub bob +x")
	bob.ok("DELETE \"Other Users/alice/Projects/Sub\"")
	u = alice.ok(`LIST "" "Projects*"`)
	if len(u) != 1 {
		t.Fatalf("alice's LIST after bob's DELETE: %q", u)
	}

	// Quota of a shared mailbox is its owner's.
	u = bob.ok("GETQUOTAROOT " + shared)
	hasLine(t, u, `* QUOTAROOT "Other Users/alice/Projects" "Other Users/alice"`)
	bob.ok(`GETQUOTA "Other Users/alice"`)
	bob.expect(`GETQUOTA "Other Users/carol"`, "NO [NONEXISTENT]")

	// Taking the rights away makes the folder vanish again.
	alice.ok("DELETEACL Projects bob")
	bob.expect("SELECT "+shared, "NO [NONEXISTENT]")
	u = bob.ok(`LIST "" "*"`)
	if strings.Contains(strings.Join(u, "\n"), "Other Users") {
		t.Fatalf("LIST after DELETEACL: %q", u)
	}
	// "anyone" grants to every user.
	alice.ok("SETACL Projects anyone lr")
	bob.expect("EXAMINE "+shared, "OK [READ-ONLY]")

	// What bob puts into alice's folder counts against alice's quota,
	// and a COPY over it adds nothing (not even its first batch).
	alice.ok("SETACL Projects bob lri")
	acct, err := ts.store.Account(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	q, err := acct.Quota(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := acct.SetQuota(t.Context(), 0, q.MessagesUsed+copyBatch); err != nil {
		t.Fatal(err)
	}
	bob.ok("SELECT INBOX")
	for range copyBatch + 1 {
		bob.appendMsg("INBOX", "", simpleMsg)
	}
	bob.expect("COPY 1:* "+shared, "NO [OVERQUOTA]")
	hasLine(t, bob.ok("STATUS "+shared+" (MESSAGES)"), fmt.Sprintf(`* STATUS "Other Users/alice/Projects" (MESSAGES %d)`, q.MessagesUsed))
	if err := acct.SetQuota(t.Context(), 0, q.MessagesUsed+1); err != nil {
		t.Fatal(err)
	}
	bob.expect(fmt.Sprintf("APPEND %s {%d+}\r\n%s", shared, len(simpleMsg), simpleMsg), "OK")
	bob.expect(fmt.Sprintf("APPEND %s {%d+}\r\n%s", shared, len(simpleMsg), simpleMsg), "NO [OVERQUOTA]")

	// INBOX is case-insensitive in the other users' namespace too.
	alice.ok("CREATE INBOX/Sub")
	alice.ok("SETACL INBOX/Sub bob lr")
	u = bob.expect(`EXAMINE "Other Users/alice/inbox/Sub"`, "OK [READ-ONLY]")
	hasLine(t, u, `* OK [PERMANENTFLAGS ()] Read-only mailbox`)
}

// copyBatch is the server's copyBatchMessages.
const copyBatch = 64

// Without "l" or "r", another user's mailbox answers every command
// exactly as a mailbox that does not exist (RFC 4314 §6): the same
// tagged response and the same untagged data, for every command that
// takes a mailbox name.
func TestSharedIsolation(t *testing.T) {
	ts, alice, bob := shareSetup(t, serverOpts{})
	ts.addUser("carol", "pw")
	alice.ok("SETACL Projects carol lrswipkxtea") // someone else's rights
	alice.ok("CREATE Post")
	alice.ok("SETACL Post bob p") // a right that does not make it visible
	alice.ok("CREATE Gone")
	alice.ok("SETACL Gone bob lr")
	alice.ok("DELETE Gone") // its ACL goes with it
	bob.appendMsg("INBOX", "", crlf("Subject: mine\n\nbob's own\n"))

	names := []string{
		"Other Users/alice/Nonexistent", // the reference: does not exist
		"Other Users/alice/Projects",    // exists, no rights for bob
		"Other Users/alice/Post",        // exists, only "p"
		"Other Users/alice/Gone",        // deleted after being shared
		"Other Users/alice/INBOX",       // exists, never shared
		"Other Users/nobody/INBOX",      // no such user
	}
	// Every command that takes a mailbox name; NAME is replaced.
	commands := []string{
		`SELECT "NAME"`,
		`EXAMINE "NAME"`,
		`STATUS "NAME" (MESSAGES UIDNEXT UNSEEN SIZE)`,
		`LIST "" "NAME"`,
		`LIST "" "NAME*"`,
		`LIST (SUBSCRIBED) "" "NAME"`,
		`LSUB "" "NAME"`,
		`LIST "NAME" "*"`,
		`LIST "" "NAME" RETURN (STATUS (MESSAGES) MYRIGHTS CHILDREN)`,
		`CREATE "NAME/Sub"`,
		`DELETE "NAME"`,
		`RENAME "NAME" "NAME2"`,
		`RENAME "Other Users/alice/Projects" "NAME"`,
		`SUBSCRIBE "NAME"`,
		`UNSUBSCRIBE "NAME"`,
		`APPEND "NAME" {3+}` + "\r\nabc",
		`GETACL "NAME"`,
		`SETACL "NAME" bob +lr`,
		`DELETEACL "NAME" bob`,
		`LISTRIGHTS "NAME" bob`,
		`MYRIGHTS "NAME"`,
		`GETQUOTAROOT "NAME"`,
		`GETMETADATA "NAME" /private/comment`,
		`SETMETADATA "NAME" (/private/comment "x")`,
		`NOTIFY SET (mailboxes "NAME" (MessageNew MessageExpunge))`,
		`NOTIFY NONE`,
		`APPEND INBOX CATENATE (URL "/URLNAME/;UID=1")`,
		`SELECT INBOX`,
		`COPY 1 "NAME"`,
		`MOVE 1 "NAME"`,
		`REPLACE 1 "NAME" {3+}` + "\r\nabc",
		`UID REPLACE 1 "NAME" {3+}` + "\r\nabc",
		`UNSELECT`,
	}
	run := func(name string) []string {
		var out []string
		escaped := (&url.URL{Path: name}).EscapedPath()
		for _, tmpl := range commands {
			cmd := strings.ReplaceAll(tmpl, "URLNAME", escaped)
			cmd = strings.ReplaceAll(cmd, "NAME", name)
			u, tagged := bob.do(cmd)
			var lines []string
			for _, l := range u {
				if !strings.HasSuffix(l, " RECENT") { // claimed by the first SELECT INBOX
					lines = append(lines, l)
				}
			}
			resp := strings.Join(append(lines, tagged), "\n")
			resp = strings.ReplaceAll(resp, escaped, "URLNAME")
			resp = strings.ReplaceAll(resp, name, "NAME")
			out = append(out, tmpl+" => "+resp)
		}
		return out
	}
	want := run(names[0])
	for _, n := range names[1:] {
		got := run(n)
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s:\n got  %s\n want %s", n, got[i], want[i])
			}
		}
	}
	// The whole listing shows nothing of alice's.
	u := bob.ok(`LIST "" "*"`)
	if strings.Contains(strings.Join(u, "\n"), "alice") {
		t.Fatalf("LIST shows alice's mailboxes: %q", u)
	}
	// Alice's mail is untouched and bob's own message stayed.
	u = alice.ok("STATUS Projects (MESSAGES)")
	hasLine(t, u, "* STATUS Projects (MESSAGES 2)")
	u = bob.ok("STATUS INBOX (MESSAGES)")
	hasLine(t, u, "* STATUS INBOX (MESSAGES 1)")

	// The test can fail: with "lr" the same commands answer differently.
	alice.ok("SETACL Projects bob lr")
	got := run(names[1])
	if got[0] == want[0] {
		t.Fatalf("SELECT with rights answered like a missing mailbox: %s", got[0])
	}
}

// IDLE on a shared mailbox sees the owner's changes at once.
func TestSharedIdle(t *testing.T) {
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
	if l := bob.readLine(); l != "* 3 RECENT" {
		t.Fatalf("idle update: %q", l)
	}
	alice.ok("SELECT Projects")
	alice.ok(`STORE 1 +FLAGS.SILENT (\Answered)`)
	if l := bob.readLine(); !strings.HasPrefix(l, "* 1 FETCH (") || !strings.Contains(l, `\Answered`) {
		t.Fatalf("idle flag update: %q", l)
	}
	bob.write("DONE\r\n")
	if l := bob.readLine(); l != "I1 OK IDLE completed" {
		t.Fatalf("done: %q", l)
	}
}

// SETQUOTA (RFC 9208 QUOTASET) works for configured administrators only,
// on any user's root; others get NO [NOPERM].
func TestSetQuota(t *testing.T) {
	ts := newTestServer(t, serverOpts{mutate: func(c *server.Config) { c.Admins = []string{"admin"} }})
	ts.addUser("admin", "root")
	ts.addUser("bob", "hunter2")
	admin := ts.login("admin", "root")
	bob := ts.login("bob", "hunter2")
	if caps := strings.Join(bob.ok("CAPABILITY"), " "); !strings.Contains(caps, " QUOTASET") {
		t.Fatalf("no QUOTASET: %s", caps)
	}
	bob.expect(`SETQUOTA "" (STORAGE 100)`, "NO [NOPERM]")
	bob.expect(`SETQUOTA "Other Users/admin" (STORAGE 100)`, "NO [NOPERM]")
	u := admin.ok(`SETQUOTA "Other Users/bob" (STORAGE 1 MESSAGE 2)`)
	hasLine(t, u, `* QUOTA "Other Users/bob" (STORAGE 0 1 MESSAGE 0 2)`)
	u = bob.ok(`GETQUOTA ""`)
	hasLine(t, u, `* QUOTA "" (STORAGE 0 1 MESSAGE 0 2)`)
	bob.appendMsg("INBOX", "", simpleMsg)
	bob.appendMsg("INBOX", "", simpleMsg)
	bob.expect(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(simpleMsg), simpleMsg), "NO [OVERQUOTA]")
	// Resources left out lose their limit.
	u = admin.ok(`SETQUOTA "Other Users/bob" (MESSAGE 5)`)
	hasLine(t, u, `* QUOTA "Other Users/bob" (MESSAGE 2 5)`)
	u = admin.ok(`SETQUOTA "" (STORAGE 10)`)
	hasLine(t, u, `* QUOTA "" (STORAGE 0 10)`)
	admin.expect(`SETQUOTA "Other Users/nobody" (STORAGE 1)`, "NO [NONEXISTENT]")
	admin.expect(`SETQUOTA "Other Users/bob" (FILES 1)`, "NO")
	admin.expect(`SETQUOTA "Other Users/bob" (STORAGE x)`, "BAD")

	// With no administrator configured, nobody may.
	ts2 := newTestServer(t, serverOpts{})
	ts2.addUser("admin", "root")
	ts2.login("admin", "root").expect(`SETQUOTA "" (STORAGE 100)`, "NO [NOPERM]")
}

// A session reaching many users' mailboxes keeps a bounded number of
// their accounts open and still works with all of them (the one of the
// selected mailbox stays open across commands).
func TestSharedManyOwners(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("bob", "hunter2")
	bob := ts.login("bob", "hunter2")
	const owners = 12
	for i := range owners {
		name := fmt.Sprintf("owner%02d", i)
		ts.addUser(name, "pw")
		o := ts.login(name, "pw")
		o.appendMsg("INBOX", "", simpleMsg)
		o.ok("SETACL INBOX bob lr")
		o.ok("LOGOUT")
	}
	u := bob.ok(`LIST "Other Users/" "*"`)
	if len(u) != 2*owners {
		t.Fatalf("LIST: %d lines: %q", len(u), u)
	}
	for round := range 2 {
		for i := range owners {
			mb := fmt.Sprintf(`"Other Users/owner%02d/INBOX"`, i)
			bob.ok("EXAMINE " + mb)
			for j := range owners {
				other := fmt.Sprintf(`"Other Users/owner%02d/INBOX"`, (i+j)%owners)
				hasLine(t, bob.ok("STATUS "+other+" (MESSAGES)"), "* STATUS "+other+" (MESSAGES 1)")
			}
			if u := bob.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]"); !strings.Contains(strings.Join(u, ""), "Subject: hello") {
				t.Fatalf("round %d, %s: %q", round, mb, u)
			}
		}
	}
}

// NOTIFY SELECTED on another user's mailbox pushes its owner's changes
// between commands, as for one's own.
func TestSharedNotifySelected(t *testing.T) {
	_, alice, bob := shareSetup(t, serverOpts{})
	alice.ok("SETACL Projects bob lrs")
	bob.ok("SELECT " + shared)
	bob.ok("NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
	alice.appendMsg("Projects", "", crlf("Subject: three\n\nnew\n"))
	bob.expectLines("* 3 EXISTS", "* 3 RECENT", `* 3 FETCH (UID 3 FLAGS (\Recent))`)
	alice.ok("SELECT Projects")
	alice.ok(`STORE 1 +FLAGS (\Answered)`)
	bob.expectLines(`* 1 FETCH (UID 1 FLAGS (\Answered \Recent))`)
	bob.quiet()
}

// NOTIFY follows grants and revokes made after NOTIFY SET: a grant
// starts message events and is told as a LIST (MailboxName), a revoke
// stops them (nothing about the mailbox leaks afterwards) and is told
// as \NonExistent; the owner's rename of a shared mailbox is a LIST with
// OLDNAME (RFC 5465 §5.4).
func TestSharedNotifyFollowsACL(t *testing.T) {
	_, alice, bob := shareSetup(t, serverOpts{})
	alice.ok("CREATE Team")
	bob.ok(`NOTIFY SET (SUBTREE "Other Users" (MessageNew MessageExpunge MailboxName))`)
	alice.appendMsg("Projects", "", crlf("Subject: before\n\nnot shared yet\n"))
	bob.quiet()

	alice.ok("SETACL Projects bob lr")
	bob.expectLines(`* LIST (\HasNoChildren) "/" "Other Users/alice/Projects"`)
	alice.appendMsg("Projects", "", crlf("Subject: after\n\nshared now\n"))
	bob.expectLines(`* STATUS "Other Users/alice/Projects" (MESSAGES 4 UIDNEXT 5)`)

	// "l" alone: listed, but no message events.
	alice.ok("SETACL Team bob l")
	bob.expectLines(`* LIST (\HasNoChildren) "/" "Other Users/alice/Team"`)
	alice.appendMsg("Team", "", simpleMsg)
	bob.quiet()

	alice.ok("RENAME Projects Work")
	bob.expectLines(`* LIST (\HasNoChildren) "/" "Other Users/alice/Work" ("OLDNAME" ("Other Users/alice/Projects"))`)
	alice.appendMsg("Work", "", simpleMsg)
	bob.expectLines(`* STATUS "Other Users/alice/Work" (MESSAGES 5 UIDNEXT 6)`)

	alice.ok("DELETEACL Work bob")
	bob.expectLines(`* LIST (\NonExistent) "/" "Other Users/alice/Work"`)
	alice.appendMsg("Work", "", simpleMsg)
	bob.quiet()

	// A grant to anyone reaches bob too.
	alice.ok("SETACL Work anyone lr")
	bob.expectLines(`* LIST (\HasNoChildren) "/" "Other Users/alice/Work"`)
	alice.appendMsg("Work", "", simpleMsg)
	bob.expectLines(`* STATUS "Other Users/alice/Work" (MESSAGES 7 UIDNEXT 8)`)

	// The owner's CREATE below it (the new mailbox inherits the ACL) and
	// DELETE are followed too.
	alice.ok("CREATE Work/Sub")
	bob.expectLines(`* LIST (\HasNoChildren) "/" "Other Users/alice/Work/Sub"`)
	alice.appendMsg("Work/Sub", "", simpleMsg)
	bob.expectLines(`* STATUS "Other Users/alice/Work/Sub" (MESSAGES 1 UIDNEXT 2)`)
	alice.ok("DELETE Work/Sub")
	bob.expectLines(`* LIST (\NonExistent) "/" "Other Users/alice/Work/Sub"`)
	bob.quiet()
}
