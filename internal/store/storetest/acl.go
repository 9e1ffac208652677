package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// aclOf returns "identifier=rights" strings of mailbox's ACL.
func aclOf(t *testing.T, a store.Account, mailbox string) []string {
	t.Helper()
	acl, err := a.ACL(t.Context(), mailbox)
	if err != nil {
		t.Fatalf("ACL(%q): %v", mailbox, err)
	}
	out := []string{}
	for _, e := range acl {
		out = append(out, e.Identifier+"="+e.Rights)
	}
	return out
}

func setACL(t *testing.T, a store.Account, mailbox, id string, op store.FlagOp, rights, want string) {
	t.Helper()
	got, err := a.SetACL(t.Context(), mailbox, id, op, rights)
	if err != nil {
		t.Fatalf("SetACL(%q, %q, %v, %q): %v", mailbox, id, op, rights, err)
	}
	if got != want {
		t.Fatalf("SetACL(%q, %q, %v, %q) = %q, want %q", mailbox, id, op, rights, got, want)
	}
}

// sharedNames returns "mailbox:identifier=rights,..." of SharedMailboxes.
func sharedNames(t *testing.T, a store.Account, ids ...string) []string {
	t.Helper()
	boxes, err := a.SharedMailboxes(t.Context(), ids)
	if err != nil {
		t.Fatalf("SharedMailboxes(%q): %v", ids, err)
	}
	out := []string{}
	for _, b := range boxes {
		s := b.Name + ":"
		for i, e := range b.ACL {
			if i > 0 {
				s += ","
			}
			s += e.Identifier + "=" + e.Rights
		}
		out = append(out, s)
	}
	return out
}

func sharers(t *testing.T, e *env, user string) []string {
	t.Helper()
	got, err := e.st.Sharers(e.ctx, user)
	if err != nil {
		t.Fatalf("Sharers(%q): %v", user, err)
	}
	return got
}

// testACL: entries set, added to, removed from and deleted; validation;
// ACLs follow RENAME, go with DELETE, are inherited by CREATE; the
// Sharers index; persistence.
func testACL(t *testing.T, e *env) {
	ctx := e.ctx
	alice := e.user("alice")
	bob := e.user("bob")
	e.user("carol")
	for _, n := range []string{"Projects", "Private"} {
		if err := alice.CreateMailbox(ctx, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	equal(t, "new mailbox", aclOf(t, alice, "Projects"), []string{})
	equal(t, "sharers before", sharers(t, e, "bob"), []string{})

	e.rec.TakeACLs()
	setACL(t, alice, "Projects", "bob", store.FlagsReplace, "lr", "lr")
	// Every committed SetACL is told to an ACLNotifier (NOTIFY follows it).
	equal(t, "ACLChanged calls", e.rec.TakeACLs(), []string{"alice bob"})
	setACL(t, alice, "Projects", "bob", store.FlagsAdd, "sw", "lrsw")
	setACL(t, alice, "Projects", "bob", store.FlagsRemove, "rx", "lsw")
	setACL(t, alice, "Projects", "carol", store.FlagsReplace, "lrswipkxtea", "lrswipkxtea")
	setACL(t, alice, "INBOX", "anyone", store.FlagsAdd, "l", "l")
	equal(t, "Projects", aclOf(t, alice, "Projects"), []string{"bob=lsw", "carol=lrswipkxtea"})
	equal(t, "inbox", aclOf(t, alice, "inbox"), []string{"anyone=l"})
	equal(t, "Private", aclOf(t, alice, "Private"), []string{})
	equal(t, "sharers of bob", sharers(t, e, "bob"), []string{"alice"})
	equal(t, "sharers of dave (anyone)", sharers(t, e, "dave"), []string{"alice"})
	equal(t, "sharers of alice", sharers(t, e, "alice"), []string{})
	equal(t, "shared with bob", sharedNames(t, alice, "bob", store.Anyone), []string{"INBOX:anyone=l", "Projects:bob=lsw"})
	equal(t, "shared with carol", sharedNames(t, alice, "carol"), []string{"Projects:carol=lrswipkxtea"})
	equal(t, "bob shared nothing", sharedNames(t, bob, "alice", store.Anyone), []string{})
	if r := store.RightsOf([]store.ACLEntry{{Identifier: "bob", Rights: "lsw"}, {Identifier: "anyone", Rights: "lr"}}, "bob"); r != "lrsw" {
		t.Fatalf("RightsOf = %q", r)
	}

	// Bad input.
	_, err := alice.SetACL(ctx, "Projects", "bob", store.FlagsReplace, "lq")
	wantErr(t, "SetACL unknown right", err, store.ErrInvalidRights)
	_, err = alice.SetACL(ctx, "Projects", "bob", store.FlagsReplace, "rl")
	wantErr(t, "SetACL non-canonical rights", err, store.ErrInvalidRights)
	_, err = alice.SetACL(ctx, "Projects", "-bob", store.FlagsReplace, "l")
	wantErr(t, "SetACL negative identifier", err, store.ErrInvalidIdentifier)
	_, err = alice.SetACL(ctx, "Projects", "", store.FlagsReplace, "l")
	wantErr(t, "SetACL empty identifier", err, store.ErrInvalidIdentifier)
	_, err = alice.SetACL(ctx, "Nope", "bob", store.FlagsReplace, "l")
	wantErr(t, "SetACL missing mailbox", err, store.ErrNoSuchMailbox)
	_, err = alice.ACL(ctx, "Nope")
	wantErr(t, "ACL missing mailbox", err, store.ErrNoSuchMailbox)
	if _, err := store.NormRights("lrA"); !errors.Is(err, store.ErrInvalidRights) {
		t.Fatalf("NormRights upper case: %v", err)
	}

	// Removing every right removes the entry; the last entry for an
	// identifier takes the grant out of Sharers.
	setACL(t, alice, "Projects", "bob", store.FlagsRemove, "lsw", "")
	equal(t, "after removing bob's rights", aclOf(t, alice, "Projects"), []string{"carol=lrswipkxtea"})
	setACL(t, alice, "INBOX", "anyone", store.FlagsReplace, "", "")
	equal(t, "sharers of bob after removal", sharers(t, e, "bob"), []string{})
	equal(t, "sharers of carol", sharers(t, e, "carol"), []string{"alice"})

	// Inheritance: a new mailbox starts with its nearest parent's ACL;
	// missing parents made on the way do not.
	if err := alice.CreateMailbox(ctx, "Projects/2026/Q1", ""); err != nil {
		t.Fatal(err)
	}
	equal(t, "inherited", aclOf(t, alice, "Projects/2026/Q1"), []string{"carol=lrswipkxtea"})
	equal(t, "made parent", aclOf(t, alice, "Projects/2026"), []string{})

	// RENAME keeps the ACL (children too); DELETE drops it, also from a
	// mailbox that stays as a \Noselect parent.
	if err := alice.RenameMailbox(ctx, "Projects", "Work"); err != nil {
		t.Fatal(err)
	}
	equal(t, "renamed", aclOf(t, alice, "Work"), []string{"carol=lrswipkxtea"})
	equal(t, "renamed child", aclOf(t, alice, "Work/2026/Q1"), []string{"carol=lrswipkxtea"})
	if err := alice.DeleteMailbox(ctx, "Work"); err != nil {
		t.Fatal(err)
	}
	equal(t, "deleted parent", aclOf(t, alice, "Work"), []string{})
	setACL(t, alice, "Private", "bob", store.FlagsReplace, "lr", "lr")
	if err := alice.DeleteMailbox(ctx, "Private"); err != nil {
		t.Fatal(err)
	}
	if err := alice.CreateMailbox(ctx, "Private", ""); err != nil {
		t.Fatal(err)
	}
	equal(t, "recreated", aclOf(t, alice, "Private"), []string{})
	equal(t, "shared with bob after delete", sharedNames(t, alice, "bob"), []string{})

	// Persistence.
	setACL(t, alice, "INBOX", "bob", store.FlagsReplace, "lrs", "lrs")
	e.reopen()
	alice = e.account("alice")
	equal(t, "after reopen", aclOf(t, alice, "INBOX"), []string{"bob=lrs"})
	equal(t, "sharers after reopen", sharers(t, e, "bob"), []string{"alice"})

	// A deleted grantee's entries go: a new user of the same name
	// inherits nothing.
	setACL(t, alice, "Private", "bob", store.FlagsReplace, "lr", "lr")
	bob.Close()
	if err := e.st.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateUser(ctx, "bob", "h"); err != nil {
		t.Fatal(err)
	}
	equal(t, "after grantee deleted", aclOf(t, alice, "INBOX"), []string{})
	equal(t, "Private after grantee deleted", aclOf(t, alice, "Private"), []string{})
	equal(t, "sharers of the new bob", sharers(t, e, "bob"), []string{})

	// A deleted owner is no longer a sharer.
	setACL(t, alice, "INBOX", "bob", store.FlagsReplace, "lrs", "lrs")
	alice.Close()
	if err := e.st.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	equal(t, "sharers after owner deleted", sharers(t, e, "bob"), []string{})
}

// testACLConcurrent: concurrent SetACL calls on one account, adding and
// removing rights of many identifiers, lose no update and leave Sharers
// consistent with the entries.
func testACLConcurrent(t *testing.T, e *env) {
	ctx := e.ctx
	alice := e.user("alice")
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("user%d", i)
			for _, r := range []string{"l", "r", "s", "w"} {
				if _, err := alice.SetACL(ctx, "INBOX", id, store.FlagsAdd, r); err != nil {
					errs <- err
				}
			}
			if i%2 == 0 {
				if _, err := alice.SetACL(ctx, "INBOX", id, store.FlagsReplace, ""); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var want []string
	for i := 1; i < n; i += 2 {
		want = append(want, fmt.Sprintf("user%d=lrsw", i))
	}
	slices.Sort(want)
	equal(t, "acl", aclOf(t, alice, "INBOX"), want)
	for i := range n {
		got := sharers(t, e, fmt.Sprintf("user%d", i))
		if (i%2 == 1) != slices.Equal(got, []string{"alice"}) {
			t.Fatalf("Sharers(user%d) = %v", i, got)
		}
	}
}
