// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a function that opens the backend
// on a directory (the suite picks the directory with t.TempDir and reopens
// the same directory to test persistence).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

// OpenFunc opens a backend storing its data under dir, reporting changes
// to n. It is called again on the same dir after Close to test persistence.
type OpenFunc func(t *testing.T, dir string, n store.Notifier) store.Store

// Notification is one recorded Notifier call.
type Notification struct {
	User      string
	MailboxID int64
	ModSeq    uint64
}

// Recorder is a store.Notifier that records calls.
type Recorder struct {
	mu    sync.Mutex
	calls []Notification
	lists []string // users of MailboxListChanged calls
	acls  []string // "owner identifier" of ACLChanged calls
}

// ACLChanged implements store.ACLNotifier.
func (r *Recorder) ACLChanged(owner, identifier string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acls = append(r.acls, owner+" "+identifier)
}

// TakeACLs returns and clears the "owner identifier" of recorded
// ACLChanged calls.
func (r *Recorder) TakeACLs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.acls
	r.acls = nil
	return a
}

// MailboxListChanged implements store.MailboxListNotifier.
func (r *Recorder) MailboxListChanged(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists = append(r.lists, user)
}

// TakeLists returns and clears the users of recorded MailboxListChanged
// calls.
func (r *Recorder) TakeLists() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lists
	r.lists = nil
	return l
}

// MailboxChanged implements store.Notifier.
func (r *Recorder) MailboxChanged(user string, mailboxID int64, modSeq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, Notification{user, mailboxID, modSeq})
}

// Take returns and clears the recorded calls.
func (r *Recorder) Take() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// env is one test's open store.
type env struct {
	t    *testing.T
	dir  string
	open OpenFunc
	rec  *Recorder
	st   store.Store
	ctx  context.Context
}

func newEnv(t *testing.T, open OpenFunc) *env {
	e := &env{t: t, dir: t.TempDir(), open: open, rec: &Recorder{}, ctx: context.Background()}
	e.st = open(t, e.dir, e.rec)
	t.Cleanup(func() {
		if e.st != nil {
			e.st.Close()
		}
	})
	return e
}

// reopen closes the store and opens it again on the same directory.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.st = e.open(e.t, e.dir, e.rec)
}

// user creates a user and opens their account.
func (e *env) user(name string) store.Account {
	e.t.Helper()
	if err := e.st.CreateUser(e.ctx, name, "hash-"+name); err != nil {
		e.t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return e.account(name)
}

func (e *env) account(name string) store.Account {
	e.t.Helper()
	a, err := e.st.Account(e.ctx, name)
	if err != nil {
		e.t.Fatalf("Account(%q): %v", name, err)
	}
	e.t.Cleanup(func() { a.Close() })
	return a
}

// Msg returns a small RFC 5322 message numbered n.
func Msg(n int) []byte {
	return fmt.Appendf(nil, "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\n"+
		"Subject: message %d\r\nDate: Mon, 2 Feb 2026 10:00:00 +0100\r\nMessage-ID: <%d@example.org>\r\n\r\nBody of message %d.\r\n", n, n, n)
}

func mbox(t *testing.T, a store.Account, name string) store.MailboxInfo {
	t.Helper()
	mi, err := a.Mailbox(context.Background(), name)
	if err != nil {
		t.Fatalf("Mailbox(%q): %v", name, err)
	}
	return mi
}

func appendN(t *testing.T, a store.Account, name string, from, n int, flags ...string) []uint32 {
	t.Helper()
	var msgs []store.NewMessage
	for i := from; i < from+n; i++ {
		msgs = append(msgs, store.NewMessage{Body: Msg(i), Flags: flags})
	}
	res, err := a.Append(context.Background(), name, msgs)
	if err != nil {
		t.Fatalf("Append(%q): %v", name, err)
	}
	if len(res.UIDs) != n {
		t.Fatalf("Append(%q) returned %d UIDs, want %d", name, len(res.UIDs), n)
	}
	return res.UIDs
}

func status(t *testing.T, a store.Account, name string) store.MailboxStatus {
	t.Helper()
	st, err := a.Status(context.Background(), name)
	if err != nil {
		t.Fatalf("Status(%q): %v", name, err)
	}
	return st
}

func uidsOf(t *testing.T, a store.Account, id int64) []uint32 {
	t.Helper()
	_, uids, err := a.Snapshot(context.Background(), id)
	if err != nil {
		t.Fatalf("Snapshot(%d): %v", id, err)
	}
	return uids
}

func body(t *testing.T, a store.Account, id int64, uid uint32) []byte {
	t.Helper()
	b, err := a.OpenBody(context.Background(), id, uid)
	if err != nil {
		t.Fatalf("OpenBody(%d, %d): %v", id, uid, err)
	}
	defer b.Close()
	data, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return data
}

func fetchAll(t *testing.T, a store.Account, id int64, uids []uint32, want store.Want) []store.Message {
	t.Helper()
	var out []store.Message
	err := a.Fetch(context.Background(), id, uids, want, func(m *store.Message) error {
		out = append(out, *m)
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return out
}

func flagsOf(t *testing.T, a store.Account, id int64, uid uint32) []string {
	t.Helper()
	ms := fetchAll(t, a, id, []uint32{uid}, store.WantFlags)
	if len(ms) != 1 {
		t.Fatalf("fetch UID %d: got %d messages", uid, len(ms))
	}
	return ms[0].Flags
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func equal[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// Run runs the conformance suite.
func Run(t *testing.T, open OpenFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"Users", testUsers},
		{"MailboxCreateList", testMailboxCreateList},
		{"MailboxDelete", testMailboxDelete},
		{"MailboxRename", testMailboxRename},
		{"RenameInbox", testRenameInbox},
		{"Subscriptions", testSubscriptions},
		{"AppendFetch", testAppendFetch},
		{"UIDsNeverReused", testUIDsNeverReused},
		{"UIDValidity", testUIDValidity},
		{"Flags", testFlags},
		{"UnchangedSince", testUnchangedSince},
		{"ModSeqAndChanges", testModSeqAndChanges},
		{"Vanished", testVanished},
		{"Expunge", testExpunge},
		{"CopyMove", testCopyMove},
		{"SharedBodies", testSharedBodies},
		{"Status", testStatus},
		{"Recent", testRecent},
		{"Isolation", testIsolation},
		{"Notifier", testNotifier},
		{"MailboxListNotifier", testMailboxListNotifier},
		{"ConcurrentAppend", testConcurrentAppend},
		{"Quota", testQuota},
		{"QuotaConcurrent", testQuotaConcurrent},
		{"Threads", testThreads},
		{"OddBytes", testOddBytes},
		{"Metadata", testMetadata},
		{"MetadataMailboxes", testMetadataMailboxes},
		{"MetadataLimits", testMetadataLimits},
		{"MetadataConcurrent", testMetadataConcurrent},
		{"SearchText", testSearchText},
		{"SavePreviews", testSavePreviews},
		{"SieveScripts", testSieveScripts},
		{"SieveLimits", testSieveLimits},
		{"SieveConcurrent", testSieveConcurrent},
		{"SieveState", testSieveState},
		{"SieveStateClaim", testSieveStateClaim},
		{"ACL", testACL},
		{"ACLConcurrent", testACLConcurrent},
		{"PrivateSeen", testPrivateSeen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newEnv(t, open))
		})
	}
}

func testUsers(t *testing.T, e *env) {
	ctx := e.ctx
	if err := e.st.CreateUser(ctx, "bob", "h1"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateUser(ctx, "alice", "h2"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "CreateUser duplicate", e.st.CreateUser(ctx, "bob", "x"), store.ErrUserExists)
	users, err := e.st.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Users", users, []string{"alice", "bob"})
	if h, err := e.st.PasswordHash(ctx, "bob"); err != nil || h != "h1" {
		t.Fatalf("PasswordHash(bob) = %q, %v", h, err)
	}
	if err := e.st.SetPasswordHash(ctx, "bob", "h3"); err != nil {
		t.Fatal(err)
	}
	if h, _ := e.st.PasswordHash(ctx, "bob"); h != "h3" {
		t.Fatalf("after SetPasswordHash: %q", h)
	}
	_, err = e.st.PasswordHash(ctx, "nobody")
	wantErr(t, "PasswordHash(nobody)", err, store.ErrNoSuchUser)
	// A name no user can have (readiness checks look one up) is just
	// not found.
	_, err = e.st.PasswordHash(ctx, "\x00ping\xff")
	wantErr(t, "PasswordHash(NUL and invalid UTF-8)", err, store.ErrNoSuchUser)
	_, err = e.st.Account(ctx, "\x00ping")
	wantErr(t, "Account(NUL)", err, store.ErrNoSuchUser)
	wantErr(t, "SetPasswordHash(nobody)", e.st.SetPasswordHash(ctx, "nobody", "x"), store.ErrNoSuchUser)
	_, err = e.st.Account(ctx, "nobody")
	wantErr(t, "Account(nobody)", err, store.ErrNoSuchUser)
	wantErr(t, "DeleteUser(nobody)", e.st.DeleteUser(ctx, "nobody"), store.ErrNoSuchUser)

	// A new user has INBOX.
	a := e.account("bob")
	if mi := mbox(t, a, "INBOX"); mi.Name != "INBOX" || mi.NoSelect {
		t.Fatalf("INBOX = %+v", mi)
	}
	if a.User() != "bob" {
		t.Fatalf("User() = %q", a.User())
	}
	if err := a.CreateMailbox(ctx, "Old", ""); err != nil {
		t.Fatal(err)
	}
	appendN(t, a, "INBOX", 1, 2)
	a.Close()

	if err := e.st.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	_, err = e.st.PasswordHash(ctx, "bob")
	wantErr(t, "PasswordHash after delete", err, store.ErrNoSuchUser)
	users, _ = e.st.Users(ctx)
	equal(t, "Users after delete", users, []string{"alice"})

	// Re-creating the user starts from scratch.
	b := e.user("bob")
	mbs, err := b.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(mbs) != 1 || mbs[0].Name != "INBOX" {
		t.Fatalf("mailboxes of re-created user: %+v", mbs)
	}
	if st := status(t, b, "INBOX"); st.Messages != 0 {
		t.Fatalf("re-created user's INBOX has %d messages", st.Messages)
	}

	// Users survive a reopen.
	e.reopen()
	users, _ = e.st.Users(ctx)
	equal(t, "Users after reopen", users, []string{"alice", "bob"})
	if h, _ := e.st.PasswordHash(ctx, "alice"); h != "h2" {
		t.Fatalf("hash after reopen: %q", h)
	}
}

func names(t *testing.T, a store.Account) []string {
	t.Helper()
	mbs, err := a.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range mbs {
		n := m.Name
		if m.NoSelect {
			n += "(noselect)"
		}
		out = append(out, n)
	}
	return out
}

func testMailboxCreateList(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	if err := a.CreateMailbox(ctx, "Archive/2024/Q1", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateMailbox(ctx, "Sent", `\Sent`); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateMailbox(ctx, "inbox/Sub", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateMailbox(ctx, "Ünïcødé", ""); err != nil {
		t.Fatal(err)
	}
	equal(t, "Mailboxes", names(t, a), []string{"INBOX", "Archive", "Archive/2024", "Archive/2024/Q1", "INBOX/Sub", "Sent", "Ünïcødé"})
	if mi := mbox(t, a, "Sent"); mi.SpecialUse != `\Sent` {
		t.Fatalf("SpecialUse = %q", mi.SpecialUse)
	}
	if mi := mbox(t, a, "inBoX"); mi.Name != "INBOX" {
		t.Fatalf("Mailbox(inBoX).Name = %q", mi.Name)
	}
	// Parents are real mailboxes.
	appendN(t, a, "Archive/2024", 1, 1)
	wantErr(t, "create existing", a.CreateMailbox(ctx, "Sent", ""), store.ErrMailboxExists)
	wantErr(t, "create INBOX", a.CreateMailbox(ctx, "inbox", ""), store.ErrMailboxExists)
	_, err := a.Mailbox(ctx, "Nope")
	wantErr(t, "Mailbox(Nope)", err, store.ErrNoSuchMailbox)
	long := make([]byte, 1001)
	for i := range long {
		long[i] = 'x'
	}
	deep := "a"
	for range 50 {
		deep += "/a"
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a\x00b", "a\rb", "a\nb", string(long), deep, "\xff\xfe"} {
		wantErr(t, fmt.Sprintf("create %q", bad), a.CreateMailbox(ctx, bad, ""), store.ErrInvalidName)
	}
	// Mailboxes survive a reopen.
	a.Close()
	e.reopen()
	a = e.account("u")
	equal(t, "Mailboxes after reopen", names(t, a), []string{"INBOX", "Archive", "Archive/2024", "Archive/2024/Q1", "INBOX/Sub", "Sent", "Ünïcødé"})
}

func testMailboxDelete(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	wantErr(t, "delete INBOX", a.DeleteMailbox(ctx, "INBOX"), store.ErrNotAllowed)
	wantErr(t, "delete inbox", a.DeleteMailbox(ctx, "inbox"), store.ErrNotAllowed)
	wantErr(t, "delete missing", a.DeleteMailbox(ctx, "Nope"), store.ErrNoSuchMailbox)
	if err := a.CreateMailbox(ctx, "a/b", ""); err != nil {
		t.Fatal(err)
	}
	appendN(t, a, "a", 1, 3)
	old := mbox(t, a, "a")

	// A mailbox with children becomes \Noselect and loses its messages.
	if err := a.DeleteMailbox(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	equal(t, "after delete a", names(t, a), []string{"INBOX", "a(noselect)", "a/b"})
	_, err := a.Status(ctx, "a")
	wantErr(t, "Status(noselect)", err, store.ErrNoSelect)
	_, err = a.Append(ctx, "a", []store.NewMessage{{Body: Msg(9)}})
	wantErr(t, "Append(noselect)", err, store.ErrNoSelect)
	_, _, err = a.Snapshot(ctx, old.ID)
	if !errors.Is(err, store.ErrNoSelect) && !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("Snapshot of deleted mailbox: %v", err)
	}
	wantErr(t, "delete noselect with children", a.DeleteMailbox(ctx, "a"), store.ErrHasChildren)

	// Re-creating it makes it selectable again, empty, with a new UIDVALIDITY.
	if err := a.CreateMailbox(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	st := status(t, a, "a")
	if st.Messages != 0 || st.UIDValidity == old.UIDValidity {
		t.Fatalf("re-created a: messages %d uidvalidity %d (old %d)", st.Messages, st.UIDValidity, old.UIDValidity)
	}

	// Leaves are removed entirely.
	if err := a.DeleteMailbox(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteMailbox(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	equal(t, "after deleting all", names(t, a), []string{"INBOX"})
	_, err = a.Mailbox(ctx, "a")
	wantErr(t, "Mailbox(a) after delete", err, store.ErrNoSuchMailbox)
	_, _, err = a.Snapshot(ctx, old.ID)
	if err == nil {
		t.Fatal("Snapshot of a deleted mailbox succeeded")
	}
}

func testMailboxRename(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	for _, n := range []string{"a/b/c", "a2", "other"} {
		if err := a.CreateMailbox(ctx, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	uids := appendN(t, a, "a/b", 1, 2, `\Flagged`)
	before := mbox(t, a, "a/b")

	wantErr(t, "rename missing", a.RenameMailbox(ctx, "nope", "x"), store.ErrNoSuchMailbox)
	wantErr(t, "rename onto existing", a.RenameMailbox(ctx, "a", "other"), store.ErrMailboxExists)
	wantErr(t, "rename onto INBOX", a.RenameMailbox(ctx, "a", "inbox"), store.ErrMailboxExists)
	wantErr(t, "rename onto itself", a.RenameMailbox(ctx, "a", "a"), store.ErrMailboxExists)
	wantErr(t, "rename to own child", a.RenameMailbox(ctx, "a", "a/x"), store.ErrNotAllowed)
	wantErr(t, "rename to invalid", a.RenameMailbox(ctx, "a", "x//y"), store.ErrInvalidName)

	// The whole hierarchy moves; "a2" (a name prefix, not a child) stays.
	if err := a.RenameMailbox(ctx, "a", "new/top"); err != nil {
		t.Fatal(err)
	}
	equal(t, "after rename", names(t, a), []string{"INBOX", "a2", "new", "new/top", "new/top/b", "new/top/b/c", "other"})
	after := mbox(t, a, "new/top/b")
	if after.ID != before.ID {
		t.Fatalf("renamed mailbox id %d, was %d", after.ID, before.ID)
	}
	equal(t, "UIDs after rename", uidsOf(t, a, after.ID), uids)
	if got := body(t, a, after.ID, uids[1]); string(got) != string(Msg(2)) {
		t.Fatalf("body after rename = %q", got)
	}
	equal(t, "flags after rename", flagsOf(t, a, after.ID, uids[0]), []string{`\Flagged`})
	_, err := a.Mailbox(ctx, "a/b")
	wantErr(t, "old name after rename", err, store.ErrNoSuchMailbox)

	// The old name can be created again, with a different UIDVALIDITY.
	if err := a.CreateMailbox(ctx, "a/b", ""); err != nil {
		t.Fatal(err)
	}
	if mi := mbox(t, a, "a/b"); mi.UIDValidity == after.UIDValidity || mi.ID == after.ID {
		t.Fatalf("re-created a/b shares identity with renamed mailbox: %+v vs %+v", mi, after)
	}
}

func testRenameInbox(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	if err := a.CreateMailbox(ctx, "INBOX/child", ""); err != nil {
		t.Fatal(err)
	}
	inbox := mbox(t, a, "INBOX")
	appendN(t, a, "INBOX", 1, 3)
	if _, err := a.StoreFlags(ctx, inbox.ID, []uint32{2}, store.FlagsAdd, []string{`\Seen`, "$Work"}, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := a.RenameMailbox(ctx, "inbox", "Old Mail"); err != nil {
		t.Fatal(err)
	}
	equal(t, "after rename INBOX", names(t, a), []string{"INBOX", "INBOX/child", "Old Mail"})
	st := status(t, a, "INBOX")
	if st.Messages != 0 || st.UIDValidity != inbox.UIDValidity || st.UIDNext != 4 {
		t.Fatalf("INBOX after rename: %+v", st)
	}
	old := mbox(t, a, "Old Mail")
	uids := uidsOf(t, a, old.ID)
	if len(uids) != 3 {
		t.Fatalf("Old Mail has UIDs %v", uids)
	}
	for i, u := range uids {
		if got := body(t, a, old.ID, u); string(got) != string(Msg(i+1)) {
			t.Fatalf("Old Mail UID %d body %q", u, got)
		}
	}
	equal(t, "flags moved", flagsOf(t, a, old.ID, uids[1]), []string{`\Seen`, "$Work"})
	// INBOX keeps allocating fresh UIDs.
	if u := appendN(t, a, "INBOX", 4, 1); u[0] < 4 {
		t.Fatalf("UID after INBOX rename = %d", u[0])
	}
}

func testSubscriptions(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	for _, n := range []string{"Zeta", "Alpha/Beta", "does/not/exist", "Zeta"} {
		if err := a.SetSubscribed(ctx, n, true); err != nil {
			t.Fatal(err)
		}
	}
	subs, err := a.Subscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Subscriptions", subs, []string{"Alpha/Beta", "Zeta", "does/not/exist"})
	if err := a.SetSubscribed(ctx, "Zeta", false); err != nil {
		t.Fatal(err)
	}
	if err := a.SetSubscribed(ctx, "never", false); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "subscribe invalid", a.SetSubscribed(ctx, "a//b", true), store.ErrInvalidName)
	a.Close()
	e.reopen()
	a = e.account("u")
	subs, _ = a.Subscriptions(ctx)
	equal(t, "Subscriptions after reopen", subs, []string{"Alpha/Beta", "does/not/exist"})
	// Subscriptions are independent of mailbox existence.
	if err := a.CreateMailbox(ctx, "Zeta", ""); err != nil {
		t.Fatal(err)
	}
	subs, _ = a.Subscriptions(ctx)
	equal(t, "Subscriptions after create", subs, []string{"Alpha/Beta", "does/not/exist"})
}

func testAppendFetch(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	date := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("", -7*3600))
	raw := []byte("From: x@example.org\r\nSubject: binary\r\n\r\n\x00\x01\xff bytes \r\n")
	// SaveDate is whole seconds: from the second before the append on.
	before := time.Now().Truncate(time.Second).Add(-time.Second)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{
		{Body: Msg(1), Flags: []string{`\Seen`, `\Recent`}, InternalDate: date},
		{Body: raw},
		{Body: Msg(3), Flags: []string{"$label1", `\draft`}},
	})
	if err != nil {
		t.Fatal(err)
	}
	inbox := mbox(t, a, "INBOX")
	if res.MailboxID != inbox.ID || res.UIDValidity != inbox.UIDValidity {
		t.Fatalf("AppendResult %+v, mailbox %+v", res, inbox)
	}
	equal(t, "UIDs", res.UIDs, []uint32{1, 2, 3})
	if got := body(t, a, inbox.ID, 2); string(got) != string(raw) {
		t.Fatalf("body = %q, want %q", got, raw)
	}
	b, err := a.OpenBody(ctx, inbox.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() != int64(len(Msg(1))) {
		t.Fatalf("Body.Size = %d, want %d", b.Size(), len(Msg(1)))
	}
	part := make([]byte, 4)
	if _, err := b.ReadAt(part, 6); err != nil || string(part) != "Alic" {
		t.Fatalf("ReadAt = %q, %v", part, err)
	}
	b.Close()
	if _, err := a.OpenBody(ctx, inbox.ID, 99); err == nil {
		t.Fatal("OpenBody of missing UID succeeded")
	}

	all := store.WantFlags | store.WantDates | store.WantSize | store.WantEnvelope | store.WantBody | store.WantBodyStructure | store.WantIDs
	ms := fetchAll(t, a, inbox.ID, []uint32{1, 2, 3, 4, 100}, all)
	if len(ms) != 3 {
		t.Fatalf("Fetch returned %d messages, want 3", len(ms))
	}
	for i, m := range ms {
		if m.UID != uint32(i+1) {
			t.Fatalf("message %d has UID %d", i, m.UID)
		}
		if m.EmailID == "" || m.ThreadID == "" {
			t.Fatalf("UID %d: empty EmailID/ThreadID", m.UID)
		}
		if m.SaveDate.Before(before) || m.SaveDate.After(time.Now().Add(2*time.Second)) {
			t.Fatalf("UID %d: SaveDate %v", m.UID, m.SaveDate)
		}
		if m.ModSeq == 0 {
			t.Fatalf("UID %d: ModSeq 0", m.UID)
		}
	}
	// The parse results computed at delivery come back byte for byte.
	for i, raw := range [][]byte{Msg(1), raw, Msg(3)} {
		info, err := message.Parse(raw)
		if err != nil {
			t.Fatalf("message.Parse: %v", err)
		}
		m := ms[i]
		if !bytes.Equal(m.Envelope, info.Envelope) || !bytes.Equal(m.Body, info.Body) ||
			!bytes.Equal(m.BodyStructure, info.BodyStructure) {
			t.Fatalf("UID %d: parse results differ from message.Parse:\n%q\n%q", m.UID, m.Envelope, info.Envelope)
		}
		if !m.SentDate.Equal(info.SentDate) {
			t.Fatalf("UID %d: SentDate %v, want %v", m.UID, m.SentDate, info.SentDate)
		}
		// The opened body carries the same part tree.
		b, err := a.OpenBody(ctx, inbox.ID, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Parts(), info.Parts) {
			t.Fatalf("UID %d: Body.Parts %q, want %q", m.UID, b.Parts(), info.Parts)
		}
		b.Close()
	}
	if len(ms[0].Envelope) == 0 || len(ms[0].BodyStructure) == 0 {
		t.Fatal("empty ENVELOPE/BODYSTRUCTURE")
	}
	if ms[0].EmailID == ms[1].EmailID {
		t.Fatal("different messages share an EmailID")
	}
	if !ms[0].InternalDate.Equal(date) {
		t.Fatalf("InternalDate = %v, want %v", ms[0].InternalDate, date)
	}
	if _, off := ms[0].InternalDate.Zone(); off != -7*3600 {
		t.Fatalf("InternalDate zone offset = %d", off)
	}
	if d := time.Since(ms[1].InternalDate); d < -2*time.Second || d > time.Minute {
		t.Fatalf("default InternalDate = %v", ms[1].InternalDate)
	}
	if ms[1].Size != int64(len(raw)) {
		t.Fatalf("Size = %d, want %d", ms[1].Size, len(raw))
	}
	equal(t, "flags 1", ms[0].Flags, []string{`\Seen`})
	equal(t, "flags 2", ms[1].Flags, nil)
	equal(t, "flags 3", ms[2].Flags, []string{`\Draft`, "$label1"})

	// Only requested fields are filled.
	ms = fetchAll(t, a, inbox.ID, []uint32{1}, store.WantSize)
	if len(ms) != 1 || ms[0].Size == 0 || ms[0].Flags != nil || !ms[0].InternalDate.IsZero() || ms[0].EmailID != "" {
		t.Fatalf("WantSize only: %+v", ms)
	}
	// Unsorted, duplicated UID lists still give ascending UIDs.
	ms = fetchAll(t, a, inbox.ID, []uint32{3, 1, 3}, store.WantFlags)
	if len(ms) != 2 || ms[0].UID != 1 || ms[1].UID != 3 {
		t.Fatalf("unsorted fetch: %+v", ms)
	}
	// fn's error stops the fetch and is returned.
	stop := errors.New("stop")
	n := 0
	err = a.Fetch(ctx, inbox.ID, []uint32{1, 2, 3}, store.WantFlags, func(*store.Message) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Fetch with failing fn: err %v after %d calls", err, n)
	}
	_, err = a.Append(ctx, "Nope", []store.NewMessage{{Body: Msg(1)}})
	wantErr(t, "Append to missing", err, store.ErrNoSuchMailbox)
	err = a.Fetch(ctx, 987654, []uint32{1}, store.WantFlags, func(*store.Message) error { return nil })
	wantErr(t, "Fetch missing mailbox", err, store.ErrNoSuchMailbox)

	// Everything survives a reopen.
	a.Close()
	e.reopen()
	a = e.account("u")
	if got := body(t, a, inbox.ID, 2); string(got) != string(raw) {
		t.Fatalf("body after reopen = %q", got)
	}
	ms2 := fetchAll(t, a, inbox.ID, []uint32{1, 2, 3}, all)
	if len(ms2) != 3 || ms2[0].EmailID != ms[0].EmailID && ms2[0].EmailID == "" || !ms2[0].InternalDate.Equal(date) {
		t.Fatalf("after reopen: %+v", ms2)
	}
}

func testUIDsNeverReused(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	id := mbox(t, a, "INBOX").ID
	u1 := appendN(t, a, "INBOX", 1, 3)
	equal(t, "first UIDs", u1, []uint32{1, 2, 3})
	if _, err := a.Expunge(ctx, id, []uint32{3}, false); err != nil {
		t.Fatal(err)
	}
	u2 := appendN(t, a, "INBOX", 4, 1)
	equal(t, "UID after expunge", u2, []uint32{4})
	if _, err := a.Expunge(ctx, id, nil, false); err != nil {
		t.Fatal(err)
	}
	a.Close()
	e.reopen()
	a = e.account("u")
	if st := status(t, a, "INBOX"); st.UIDNext != 5 || st.Messages != 0 {
		t.Fatalf("after reopen: UIDNEXT %d messages %d", st.UIDNext, st.Messages)
	}
	u3 := appendN(t, a, "INBOX", 5, 2)
	equal(t, "UIDs after reopen", u3, []uint32{5, 6})
	// Copies into a mailbox also take fresh UIDs.
	if err := a.CreateMailbox(ctx, "B", ""); err != nil {
		t.Fatal(err)
	}
	appendN(t, a, "B", 7, 2)
	res, err := a.Copy(ctx, id, []uint32{5, 6}, "B")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "copy UIDs", res.DestUIDs, []uint32{3, 4})
}

func testUIDValidity(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	if err := a.CreateMailbox(ctx, "X", ""); err != nil {
		t.Fatal(err)
	}
	x := mbox(t, a, "X")
	inbox := mbox(t, a, "INBOX")
	if x.UIDValidity == 0 || inbox.UIDValidity == 0 {
		t.Fatal("zero UIDVALIDITY")
	}
	a.Close()
	e.reopen()
	a = e.account("u")
	if got := mbox(t, a, "X"); got.UIDValidity != x.UIDValidity || got.ID != x.ID {
		t.Fatalf("X after reopen: %+v, was %+v", got, x)
	}
	seen := map[uint32]bool{x.UIDValidity: true}
	for i := range 3 {
		if err := a.DeleteMailbox(ctx, "X"); err != nil {
			t.Fatal(err)
		}
		if err := a.CreateMailbox(ctx, "X", ""); err != nil {
			t.Fatal(err)
		}
		v := mbox(t, a, "X").UIDValidity
		if seen[v] {
			t.Fatalf("round %d: UIDVALIDITY %d reused after delete+create", i, v)
		}
		seen[v] = true
		if i == 1 {
			a.Close()
			e.reopen()
			a = e.account("u")
		}
	}
}

func testFlags(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	id := mbox(t, a, "INBOX").ID
	appendN(t, a, "INBOX", 1, 3)

	res, err := a.StoreFlags(ctx, id, []uint32{1, 2}, store.FlagsAdd, []string{`\seen`, `\FLAGGED`, "$Important", `\Recent`}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Updated) != 2 {
		t.Fatalf("Updated = %+v", res.Updated)
	}
	for _, u := range res.Updated {
		equal(t, "updated flags", u.Flags, []string{`\Flagged`, `\Seen`, "$Important"})
		if u.ModSeq != res.ModSeq || res.ModSeq == 0 {
			t.Fatalf("UID %d changed at modseq %d, the STORE reports %d", u.UID, u.ModSeq, res.ModSeq)
		}
	}
	equal(t, "new keywords", res.Keywords, []string{"$Important"})

	// A different spelling of a known keyword keeps the first spelling.
	res, err = a.StoreFlags(ctx, id, []uint32{3}, store.FlagsAdd, []string{"$IMPORTANT", "Later"}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "flags of 3", res.Updated[0].Flags, []string{"$Important", "Later"})
	equal(t, "keywords grew", res.Keywords, []string{"$Important", "Later"})
	res, err = a.StoreFlags(ctx, id, []uint32{3}, store.FlagsAdd, []string{"later"}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Keywords != nil {
		t.Fatalf("Keywords = %v though the list did not grow", res.Keywords)
	}
	equal(t, "idempotent add", res.Updated[0].Flags, []string{"$Important", "Later"})
	if res.ModSeq != 0 {
		t.Fatalf("a STORE that changed nothing reports modseq %d", res.ModSeq)
	}

	// Remove is case-insensitive too.
	if _, err := a.StoreFlags(ctx, id, []uint32{1, 2, 3}, store.FlagsRemove, []string{"$important", `\SEEN`}, 0, false); err != nil {
		t.Fatal(err)
	}
	equal(t, "after remove 1", flagsOf(t, a, id, 1), []string{`\Flagged`})
	equal(t, "after remove 3", flagsOf(t, a, id, 3), []string{"Later"})

	// Replace.
	if _, err := a.StoreFlags(ctx, id, []uint32{1}, store.FlagsReplace, []string{`\Answered`, `\Draft`, `\Deleted`, "zz", "Aa"}, 0, false); err != nil {
		t.Fatal(err)
	}
	equal(t, "after replace", flagsOf(t, a, id, 1), []string{`\Answered`, `\Deleted`, `\Draft`, "Aa", "zz"})
	if _, err := a.StoreFlags(ctx, id, []uint32{1}, store.FlagsReplace, nil, 0, false); err != nil {
		t.Fatal(err)
	}
	equal(t, "after replace with nothing", flagsOf(t, a, id, 1), nil)

	// The mailbox keyword list only grows.
	st := status(t, a, "INBOX")
	equal(t, "mailbox keywords", st.Keywords, []string{"$Important", "Aa", "Later", "zz"})

	// System flags alone, added then removed over several messages, leave
	// every keyword as it was.
	if _, err := a.StoreFlags(ctx, id, []uint32{1, 2, 3}, store.FlagsAdd, []string{`\Answered`}, 0, false); err != nil {
		t.Fatal(err)
	}
	equal(t, "system add 3", flagsOf(t, a, id, 3), []string{`\Answered`, "Later"})
	if _, err := a.StoreFlags(ctx, id, []uint32{1, 2, 3}, store.FlagsRemove, []string{`\Answered`, `\Flagged`}, 0, false); err != nil {
		t.Fatal(err)
	}
	equal(t, "system remove 2", flagsOf(t, a, id, 2), nil)
	equal(t, "system remove 3", flagsOf(t, a, id, 3), []string{"Later"})
	if _, err := a.StoreFlags(ctx, id, []uint32{2}, store.FlagsAdd, []string{`\Flagged`}, 0, false); err != nil {
		t.Fatal(err)
	}

	// Missing UIDs are ignored.
	res, err = a.StoreFlags(ctx, id, []uint32{2, 50}, store.FlagsAdd, []string{`\Seen`}, 0, false)
	if err != nil || len(res.Updated) != 1 || res.Updated[0].UID != 2 {
		t.Fatalf("store on missing UID: %+v, %v", res, err)
	}
	// Unknown system flags are rejected.
	if _, err := a.StoreFlags(ctx, id, []uint32{1}, store.FlagsAdd, []string{`\Bogus`}, 0, false); err == nil {
		t.Fatal(`storing \Bogus succeeded`)
	}
	// Flags persist.
	a.Close()
	e.reopen()
	a = e.account("u")
	equal(t, "after reopen", flagsOf(t, a, id, 2), []string{`\Flagged`, `\Seen`})
}

func testUnchangedSince(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	id := mbox(t, a, "INBOX").ID
	appendN(t, a, "INBOX", 1, 3)
	res, err := a.StoreFlags(ctx, id, []uint32{2}, store.FlagsAdd, []string{`\Seen`}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	ms2 := res.Updated[0].ModSeq
	ms := fetchAll(t, a, id, []uint32{1}, store.WantFlags)
	ms1 := ms[0].ModSeq
	if ms2 <= ms1 {
		t.Fatalf("modseq of changed message %d <= unchanged %d", ms2, ms1)
	}
	// UNCHANGEDSINCE between the two: message 2 is reported as modified.
	res, err = a.StoreFlags(ctx, id, []uint32{1, 2, 3}, store.FlagsAdd, []string{`\Flagged`}, ms1, true)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Modified", res.Modified, []uint32{2})
	if len(res.Updated) != 2 || res.Updated[0].UID != 1 || res.Updated[1].UID != 3 {
		t.Fatalf("Updated = %+v", res.Updated)
	}
	equal(t, "flags of skipped message", flagsOf(t, a, id, 2), []string{`\Seen`})
	equal(t, "flags of updated message", flagsOf(t, a, id, 1), []string{`\Flagged`})
	// UNCHANGEDSINCE 0 modifies nothing.
	res, err = a.StoreFlags(ctx, id, []uint32{1, 2, 3}, store.FlagsAdd, []string{`\Deleted`}, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Modified with 0", res.Modified, []uint32{1, 2, 3})
	if st := status(t, a, "INBOX"); st.Deleted != 0 {
		t.Fatalf("UNCHANGEDSINCE 0 changed flags: %d deleted", st.Deleted)
	}
}

func testModSeqAndChanges(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	id := mbox(t, a, "INBOX").ID
	st0 := status(t, a, "INBOX")
	if st0.HighestModSeq < 1 {
		t.Fatalf("initial HIGHESTMODSEQ %d", st0.HighestModSeq)
	}
	last := st0.HighestModSeq
	step := func(what string) uint64 {
		t.Helper()
		h := status(t, a, "INBOX").HighestModSeq
		if h <= last {
			t.Fatalf("%s: HIGHESTMODSEQ %d did not increase from %d", what, h, last)
		}
		last = h
		return h
	}
	appendN(t, a, "INBOX", 1, 5)
	mAppend := step("append")
	ms := fetchAll(t, a, id, []uint32{1, 2, 3, 4, 5}, store.WantFlags)
	for _, m := range ms {
		if m.ModSeq > mAppend || m.ModSeq == 0 {
			t.Fatalf("UID %d modseq %d > HIGHESTMODSEQ %d", m.UID, m.ModSeq, mAppend)
		}
	}
	if _, err := a.StoreFlags(ctx, id, []uint32{2}, store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	mStore := step("store")
	// A no-op store changes nothing.
	if _, err := a.StoreFlags(ctx, id, []uint32{2}, store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	if h := status(t, a, "INBOX").HighestModSeq; h != mStore {
		t.Fatalf("no-op store moved HIGHESTMODSEQ %d -> %d", mStore, h)
	}
	if _, err := a.Expunge(ctx, id, []uint32{4}, false); err != nil {
		t.Fatal(err)
	}
	step("expunge")
	if err := a.CreateMailbox(ctx, "B", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Move(ctx, id, []uint32{5}, "B"); err != nil {
		t.Fatal(err)
	}
	step("move")
	appendN(t, a, "INBOX", 6, 1) // UID 6
	step("append after move")

	cs, err := a.Changes(ctx, id, mAppend, 5)
	if err != nil {
		t.Fatal(err)
	}
	if cs.HighestModSeq != last || cs.UIDNext != 7 {
		t.Fatalf("Changes: HIGHESTMODSEQ %d UIDNEXT %d, want %d 7", cs.HighestModSeq, cs.UIDNext, last)
	}
	if len(cs.New) != 1 || cs.New[0].UID != 6 {
		t.Fatalf("New = %+v", cs.New)
	}
	if len(cs.Changed) != 1 || cs.Changed[0].UID != 2 || cs.Changed[0].ModSeq != mStore {
		t.Fatalf("Changed = %+v", cs.Changed)
	}
	equal(t, "Changed flags", cs.Changed[0].Flags, []string{`\Seen`})
	equal(t, "Expunged", cs.Expunged, []uint32{4, 5})
	// Since the store: only the expunges and the new message.
	cs, err = a.Changes(ctx, id, mStore, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.New) != 0 || len(cs.Changed) != 1 || cs.Changed[0].UID != 6 {
		t.Fatalf("Changes since store: new %+v changed %+v", cs.New, cs.Changed)
	}
	equal(t, "Expunged since store", cs.Expunged, []uint32{4, 5})
	// Nothing since now.
	cs, err = a.Changes(ctx, id, last, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.New)+len(cs.Changed)+len(cs.Expunged) != 0 {
		t.Fatalf("Changes since now: %+v", cs)
	}
	// Tombstones survive a reopen.
	a.Close()
	e.reopen()
	a = e.account("u")
	cs, err = a.Changes(ctx, id, mAppend, 6)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Expunged after reopen", cs.Expunged, []uint32{4, 5})
}

func testExpunge(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	id := mbox(t, a, "INBOX").ID
	appendN(t, a, "INBOX", 1, 6)
	if _, err := a.StoreFlags(ctx, id, []uint32{2, 4, 6}, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
		t.Fatal(err)
	}
	// onlyDeleted restricted to a UID set.
	got, err := a.Expunge(ctx, id, []uint32{1, 2, 3, 4}, true)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "expunged", got, []uint32{2, 4})
	equal(t, "remaining", uidsOf(t, a, id), []uint32{1, 3, 5, 6})
	// onlyDeleted over the whole mailbox.
	got, err = a.Expunge(ctx, id, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "expunged all deleted", got, []uint32{6})
	// Nothing to do: no error, nothing returned, no modseq change.
	h := status(t, a, "INBOX").HighestModSeq
	got, err = a.Expunge(ctx, id, nil, true)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty expunge: %v, %v", got, err)
	}
	if h2 := status(t, a, "INBOX").HighestModSeq; h2 != h {
		t.Fatalf("empty expunge moved HIGHESTMODSEQ %d -> %d", h, h2)
	}
	// Explicit UIDs regardless of flags.
	got, err = a.Expunge(ctx, id, []uint32{5, 3, 99}, false)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "expunged explicit", got, []uint32{3, 5})
	got, err = a.Expunge(ctx, id, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "expunged everything", got, []uint32{1})
	if st := status(t, a, "INBOX"); st.Messages != 0 || st.Size != 0 {
		t.Fatalf("after expunging everything: %+v", st)
	}
	if _, err := a.OpenBody(ctx, id, 1); err == nil {
		t.Fatal("OpenBody of expunged message succeeded")
	}
}

func testCopyMove(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	if err := a.CreateMailbox(ctx, "Dest", ""); err != nil {
		t.Fatal(err)
	}
	src := mbox(t, a, "INBOX")
	dst := mbox(t, a, "Dest")
	date := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var msgs []store.NewMessage
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, store.NewMessage{Body: Msg(i), InternalDate: date.Add(time.Duration(i) * time.Hour)})
	}
	if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	appendN(t, a, "Dest", 10, 2) // Dest UIDs 1, 2
	if _, err := a.StoreFlags(ctx, src.ID, []uint32{2}, store.FlagsAdd, []string{`\Answered`, "$Copied"}, 0, false); err != nil {
		t.Fatal(err)
	}
	srcIDs := fetchAll(t, a, src.ID, []uint32{1, 2, 3, 4, 5}, store.WantIDs)

	res, err := a.Copy(ctx, src.ID, []uint32{4, 2, 99}, "dest")
	if err == nil {
		t.Fatal("Copy to a differently-cased non-INBOX name succeeded")
	}
	wantErr(t, "Copy to wrong case", err, store.ErrNoSuchMailbox)
	res, err = a.Copy(ctx, src.ID, []uint32{4, 2, 99}, "Dest")
	if err != nil {
		t.Fatal(err)
	}
	if res.DestMailboxID != dst.ID || res.DestUIDValidity != dst.UIDValidity {
		t.Fatalf("CopyResult %+v", res)
	}
	equal(t, "copy src", res.SrcUIDs, []uint32{2, 4})
	equal(t, "copy dest", res.DestUIDs, []uint32{3, 4})
	equal(t, "source intact", uidsOf(t, a, src.ID), []uint32{1, 2, 3, 4, 5})
	equal(t, "dest UIDs", uidsOf(t, a, dst.ID), []uint32{1, 2, 3, 4})
	cp := fetchAll(t, a, dst.ID, []uint32{3, 4}, store.WantFlags|store.WantDates|store.WantIDs)
	equal(t, "copied flags", cp[0].Flags, []string{`\Answered`, "$Copied"})
	if !cp[0].InternalDate.Equal(date.Add(2 * time.Hour)) {
		t.Fatalf("copied InternalDate %v", cp[0].InternalDate)
	}
	if cp[0].EmailID != srcIDs[1].EmailID || cp[1].EmailID != srcIDs[3].EmailID {
		t.Fatalf("EmailID changed on copy: %q %q vs %q %q", cp[0].EmailID, cp[1].EmailID, srcIDs[1].EmailID, srcIDs[3].EmailID)
	}
	if got := body(t, a, dst.ID, 3); string(got) != string(Msg(2)) {
		t.Fatalf("copied body %q", got)
	}
	if kw := status(t, a, "Dest").Keywords; !slices.Contains(kw, "$Copied") {
		t.Fatalf("dest keywords %v lack $Copied", kw)
	}

	// Move.
	before := status(t, a, "INBOX").HighestModSeq
	res, err = a.Move(ctx, src.ID, []uint32{5, 1, 3}, "Dest")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "move src", res.SrcUIDs, []uint32{1, 3, 5})
	equal(t, "move dest", res.DestUIDs, []uint32{5, 6, 7})
	st := status(t, a, "INBOX")
	if res.SrcModSeq <= before || res.SrcModSeq != st.HighestModSeq {
		t.Fatalf("SrcModSeq %d, before %d, now %d", res.SrcModSeq, before, st.HighestModSeq)
	}
	equal(t, "source after move", uidsOf(t, a, src.ID), []uint32{2, 4})
	equal(t, "dest after move", uidsOf(t, a, dst.ID), []uint32{1, 2, 3, 4, 5, 6, 7})
	mv := fetchAll(t, a, dst.ID, []uint32{5, 6, 7}, store.WantDates|store.WantIDs)
	for i, srcUID := range []uint32{1, 3, 5} {
		if got := body(t, a, dst.ID, mv[i].UID); string(got) != string(Msg(int(srcUID))) {
			t.Fatalf("moved body %d = %q", i, got)
		}
		if mv[i].EmailID != srcIDs[srcUID-1].EmailID {
			t.Fatalf("EmailID changed on move")
		}
		if !mv[i].InternalDate.Equal(date.Add(time.Duration(srcUID) * time.Hour)) {
			t.Fatalf("moved InternalDate %v", mv[i].InternalDate)
		}
	}
	cs, err := a.Changes(ctx, src.ID, before, 5)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "move expunged", cs.Expunged, []uint32{1, 3, 5})

	// Copy into the same mailbox.
	res, err = a.Copy(ctx, src.ID, []uint32{2}, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "self copy", res.DestUIDs, []uint32{6})
	// Errors.
	_, err = a.Copy(ctx, src.ID, []uint32{2}, "Nope")
	wantErr(t, "copy to missing", err, store.ErrNoSuchMailbox)
	_, err = a.Move(ctx, 987654, []uint32{2}, "Dest")
	wantErr(t, "move from missing", err, store.ErrNoSuchMailbox)
	// Empty copy: no UIDs, nothing changes.
	res, err = a.Copy(ctx, src.ID, []uint32{1000}, "Dest")
	if err != nil || len(res.DestUIDs) != 0 {
		t.Fatalf("empty copy: %+v %v", res, err)
	}
}

func testSharedBodies(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	if err := a.CreateMailbox(ctx, "B", ""); err != nil {
		t.Fatal(err)
	}
	src := mbox(t, a, "INBOX")
	b := mbox(t, a, "B")
	appendN(t, a, "INBOX", 1, 2)
	res, err := a.Copy(ctx, src.ID, []uint32{1, 2}, "B")
	if err != nil {
		t.Fatal(err)
	}
	// Expunging the originals leaves the copies readable.
	if _, err := a.Expunge(ctx, src.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	for i, u := range res.DestUIDs {
		if got := body(t, a, b.ID, u); string(got) != string(Msg(i+1)) {
			t.Fatalf("copy body after source expunge = %q", got)
		}
	}
	// Deleting the source mailbox does not hurt copies either.
	if err := a.CreateMailbox(ctx, "C", ""); err != nil {
		t.Fatal(err)
	}
	res, err = a.Copy(ctx, b.ID, res.DestUIDs, "C")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteMailbox(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	c := mbox(t, a, "C")
	if got := body(t, a, c.ID, res.DestUIDs[1]); string(got) != string(Msg(2)) {
		t.Fatalf("body after deleting the other mailbox = %q", got)
	}
}

func testStatus(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	id := mbox(t, a, "INBOX").ID
	st := status(t, a, "INBOX")
	if st.Messages != 0 || st.UIDNext != 1 || st.Unseen != 0 || st.FirstUnseen != 0 || st.Size != 0 {
		t.Fatalf("empty status %+v", st)
	}
	appendN(t, a, "INBOX", 1, 5)
	if _, err := a.StoreFlags(ctx, id, []uint32{1, 2, 4}, store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreFlags(ctx, id, []uint32{2, 5}, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
		t.Fatal(err)
	}
	var size int64
	for i := 1; i <= 5; i++ {
		size += int64(len(Msg(i)))
	}
	st = status(t, a, "inbox")
	if st.Name != "INBOX" || st.ID != id {
		t.Fatalf("status info %+v", st.MailboxInfo)
	}
	if st.Messages != 5 || st.Unseen != 2 || st.Deleted != 2 || st.Size != size || st.UIDNext != 6 || st.FirstUnseen != 3 {
		t.Fatalf("status %+v (size want %d)", st, size)
	}
	snap, uids, err := a.Snapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "snapshot UIDs", uids, []uint32{1, 2, 3, 4, 5})
	if snap.Messages != 5 || snap.HighestModSeq != st.HighestModSeq || snap.UIDValidity != st.UIDValidity {
		t.Fatalf("snapshot %+v vs status %+v", snap, st)
	}
	_, err = a.Status(ctx, "Nope")
	wantErr(t, "Status(Nope)", err, store.ErrNoSuchMailbox)
}

func testRecent(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	id := mbox(t, a, "INBOX").ID
	appendN(t, a, "INBOX", 1, 3)
	st, _, err := a.Snapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Recent != 3 {
		t.Fatalf("Recent = %d, want 3", st.Recent)
	}
	first, err := a.ClaimRecent(ctx, id, st.UIDNext-1)
	if err != nil {
		t.Fatal(err)
	}
	if first != 1 {
		t.Fatalf("first claim: %d, want 1", first)
	}
	// A second session gets nothing recent.
	first, err = a.ClaimRecent(ctx, id, st.UIDNext-1)
	if err != nil {
		t.Fatal(err)
	}
	if first <= 3 {
		t.Fatalf("second claim: %d, want > 3", first)
	}
	if st := status(t, a, "INBOX"); st.Recent != 0 {
		t.Fatalf("Recent after claim = %d", st.Recent)
	}
	appendN(t, a, "INBOX", 4, 2)
	if st := status(t, a, "INBOX"); st.Recent != 2 {
		t.Fatalf("Recent after new mail = %d", st.Recent)
	}
	first, err = a.ClaimRecent(ctx, id, 4)
	if err != nil || first != 4 {
		t.Fatalf("claim up to 4: %d, %v", first, err)
	}
	a.Close()
	e.reopen()
	a = e.account("u")
	if st := status(t, a, "INBOX"); st.Recent != 1 {
		t.Fatalf("Recent after reopen = %d, want 1", st.Recent)
	}

	// An Append that claims \Recent (its session has the mailbox
	// selected) takes the new message and the one still unclaimed (5).
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: Msg(6), ClaimRecent: true}})
	if err != nil || res.RecentFrom != 5 || len(res.UIDs) != 1 || res.UIDs[0] != 6 {
		t.Fatalf("claiming Append: %+v, %v; want UID 6 claimed from 5", res, err)
	}
	if first, err := a.ClaimRecent(ctx, id, 6); err != nil || first != 7 {
		t.Fatalf("claim after the claiming Append: %d, %v; want nothing (7)", first, err)
	}
	if st := status(t, a, "INBOX"); st.Recent != 0 {
		t.Fatalf("Recent after the claiming Append = %d", st.Recent)
	}
	if res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: Msg(7)}}); err != nil || res.RecentFrom != 0 {
		t.Fatalf("Append without a claim: %+v, %v", res, err)
	}
	if st := status(t, a, "INBOX"); st.Recent != 1 {
		t.Fatalf("Recent after an Append without a claim = %d, want 1", st.Recent)
	}
}

func testIsolation(t *testing.T, e *env) {
	ctx := e.ctx
	alice := e.user("alice")
	bob := e.user("bob")
	if err := alice.CreateMailbox(ctx, "Secret", ""); err != nil {
		t.Fatal(err)
	}
	secret := []byte("Subject: secret\r\n\r\nalice's secret\r\n")
	res, err := alice.Append(ctx, "Secret", []store.NewMessage{{Body: secret}})
	if err != nil {
		t.Fatal(err)
	}
	ares, err := alice.Append(ctx, "INBOX", []store.NewMessage{{Body: secret}})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "bob's mailboxes", names(t, bob), []string{"INBOX"})
	_, err = bob.Status(ctx, "Secret")
	wantErr(t, "bob Status(Secret)", err, store.ErrNoSuchMailbox)
	// Whatever alice's mailbox IDs mean to bob, they never reach her mail.
	for _, id := range []int64{res.MailboxID, ares.MailboxID} {
		err := bob.Fetch(ctx, id, []uint32{1}, store.WantFlags, func(m *store.Message) error {
			return fmt.Errorf("bob fetched UID %d of mailbox %d", m.UID, id)
		})
		if err != nil && !errors.Is(err, store.ErrNoSuchMailbox) && !errors.Is(err, store.ErrNoSelect) {
			t.Fatal(err)
		}
		if b, err := bob.OpenBody(ctx, id, 1); err == nil {
			data, _ := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
			b.Close()
			t.Fatalf("bob opened a body of mailbox %d: %q", id, data)
		}
		if _, err := bob.Copy(ctx, id, []uint32{1}, "INBOX"); err == nil {
			if st := status(t, bob, "INBOX"); st.Messages != 0 {
				t.Fatal("bob copied alice's message")
			}
		}
	}
	if err := bob.DeleteMailbox(ctx, "Secret"); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("bob deleting Secret: %v", err)
	}
	if st := status(t, alice, "Secret"); st.Messages != 1 {
		t.Fatalf("alice's Secret has %d messages", st.Messages)
	}
	if st := status(t, bob, "INBOX"); st.Messages != 0 {
		t.Fatalf("bob's INBOX has %d messages", st.Messages)
	}
}

func testNotifier(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	if err := a.CreateMailbox(ctx, "B", ""); err != nil {
		t.Fatal(err)
	}
	inbox := mbox(t, a, "INBOX")
	b := mbox(t, a, "B")
	e.rec.Take()
	expect := func(what string, ids ...int64) {
		t.Helper()
		calls := e.rec.Take()
		for _, id := range ids {
			found := false
			for _, c := range calls {
				if c.MailboxID == id && c.User == "u" {
					found = true
					// The modseq reported is the mailbox's current one.
					var st store.MailboxStatus
					if id == inbox.ID {
						st = status(t, a, "INBOX")
					} else {
						st = status(t, a, "B")
					}
					if c.ModSeq != st.HighestModSeq {
						t.Fatalf("%s: notified modseq %d, mailbox has %d", what, c.ModSeq, st.HighestModSeq)
					}
				}
			}
			if !found {
				t.Fatalf("%s: mailbox %d not notified (calls %+v)", what, id, calls)
			}
		}
	}
	appendN(t, a, "INBOX", 1, 3)
	expect("append", inbox.ID)
	if _, err := a.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	expect("store", inbox.ID)
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{1}, false); err != nil {
		t.Fatal(err)
	}
	expect("expunge", inbox.ID)
	if _, err := a.Copy(ctx, inbox.ID, []uint32{2}, "B"); err != nil {
		t.Fatal(err)
	}
	expect("copy", b.ID)
	if _, err := a.Move(ctx, inbox.ID, []uint32{3}, "B"); err != nil {
		t.Fatal(err)
	}
	expect("move", inbox.ID, b.ID)
	// Read-only calls do not notify.
	status(t, a, "INBOX")
	fetchAll(t, a, inbox.ID, []uint32{2}, store.WantFlags)
	if calls := e.rec.Take(); len(calls) != 0 {
		t.Fatalf("read-only calls notified: %+v", calls)
	}
}

func testMailboxListNotifier(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	e.rec.TakeLists()
	expect := func(what string, want bool) {
		t.Helper()
		got := e.rec.TakeLists()
		if want && (len(got) == 0 || got[0] != "u") {
			t.Fatalf("%s: mailbox list change not notified (%v)", what, got)
		}
		if !want && len(got) != 0 {
			t.Fatalf("%s: mailbox list change notified: %v", what, got)
		}
	}
	if err := a.CreateMailbox(ctx, "L/M", ""); err != nil {
		t.Fatal(err)
	}
	expect("create", true)
	if err := a.SetSubscribed(ctx, "L/M", true); err != nil {
		t.Fatal(err)
	}
	expect("subscribe", true)
	if err := a.RenameMailbox(ctx, "L", "N"); err != nil {
		t.Fatal(err)
	}
	expect("rename", true)
	if err := a.DeleteMailbox(ctx, "N/M"); err != nil {
		t.Fatal(err)
	}
	expect("delete", true)
	appendN(t, a, "INBOX", 1, 1)
	status(t, a, "INBOX")
	expect("append and status", false)
	if err := a.CreateMailbox(ctx, "N", ""); err == nil {
		t.Fatal("creating an existing mailbox succeeded")
	}
	expect("failed create", false)
}

func testConcurrentAppend(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	other := e.user("v")
	id := mbox(t, a, "INBOX").ID
	const workers, per = 8, 10
	var wg sync.WaitGroup
	results := make([][]uint32, workers)
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the workers use their own Account for the same user.
			acct := a
			if w%2 == 1 {
				acc, err := e.st.Account(ctx, "u")
				if err != nil {
					errs[w] = err
					return
				}
				defer acc.Close()
				acct = acc
			}
			for i := range per {
				res, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: Msg(w*100 + i)}})
				if err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], res.UIDs...)
				// Another user writes at the same time.
				if _, err := other.Append(ctx, "INBOX", []store.NewMessage{{Body: Msg(i)}}); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		for i, u := range results[w] {
			if seen[u] {
				t.Fatalf("UID %d assigned twice", u)
			}
			seen[u] = true
			if i > 0 && u <= results[w][i-1] {
				t.Fatalf("worker %d got UIDs out of order: %v", w, results[w])
			}
			// Each UID holds the body its appender sent.
			if got := body(t, a, id, u); string(got) != string(Msg(w*100+i)) {
				t.Fatalf("UID %d body %q, want message %d", u, got, w*100+i)
			}
		}
	}
	uids := uidsOf(t, a, id)
	if len(uids) != workers*per || uids[0] != 1 || uids[len(uids)-1] != workers*per {
		t.Fatalf("INBOX UIDs: %d of them, %v..%v", len(uids), uids[0], uids[len(uids)-1])
	}
	if st := status(t, other, "INBOX"); st.Messages != workers*per {
		t.Fatalf("other user has %d messages", st.Messages)
	}
}

// testVanished checks QRESYNC's VANISHED (EARLIER) source: expunges after a
// modseq, but only of messages that already existed at that modseq.
func testVanished(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	id := mbox(t, a, "INBOX").ID
	appendN(t, a, "INBOX", 1, 4) // UIDs 1-4
	m1 := status(t, a, "INBOX").HighestModSeq
	if _, err := a.Expunge(ctx, id, []uint32{2}, false); err != nil {
		t.Fatal(err)
	}
	appendN(t, a, "INBOX", 5, 2) // UIDs 5, 6: unknown to a client at m1
	m2 := status(t, a, "INBOX").HighestModSeq
	if _, err := a.Expunge(ctx, id, []uint32{3, 6}, false); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateMailbox(ctx, "B", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Move(ctx, id, []uint32{5}, "B"); err != nil {
		t.Fatal(err)
	}
	v, err := a.Vanished(ctx, id, m1)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Vanished since m1", v, []uint32{2, 3})
	v, err = a.Vanished(ctx, id, m2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Vanished since m2", v, []uint32{3, 5, 6})
	v, err = a.Vanished(ctx, id, status(t, a, "INBOX").HighestModSeq)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Vanished since now", v, nil)
	if _, err := a.Vanished(ctx, 999999, 1); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("Vanished on a missing mailbox: %v", err)
	}
}

// testOddBytes: mail as it was sent is stored, whatever bytes its
// headers hold (NUL, invalid UTF-8 in the ids used for threading).
func testOddBytes(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	raw := []byte("From: a@example.org\r\nSubject: odd \xff\xfe\r\nMessage-ID: <\xff\x00odd@example.org>\r\n" +
		"In-Reply-To: <\xc3(@example.org>\r\nReferences: <\x00@x> <ok@example.org>\r\n\r\nbody \x00\xff\r\n")
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: raw}})
	if err != nil {
		t.Fatalf("Append of a message with odd bytes: %v", err)
	}
	if got := body(t, a, res.MailboxID, res.UIDs[0]); !bytes.Equal(got, raw) {
		t.Fatalf("body changed: %q", got)
	}
	// A reply to it threads with it.
	reply := []byte("From: b@example.org\r\nSubject: Re: odd\r\nMessage-ID: <r@example.org>\r\n" +
		"In-Reply-To: <\xff\x00odd@example.org>\r\n\r\nreply\r\n")
	res2, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: reply}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := fetchAll(t, a, res.MailboxID, []uint32{res.UIDs[0], res2.UIDs[0]}, store.WantIDs)
	if len(msgs) != 2 || msgs[0].ThreadID == "" || msgs[0].ThreadID != msgs[1].ThreadID {
		t.Fatalf("reply to an odd Message-ID not in its thread: %+v", msgs)
	}
}
