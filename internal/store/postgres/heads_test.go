package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// watchRecorder is a notifier that records changes and lists the
// watched mailboxes a test sets (store.WatchLister).
type watchRecorder struct {
	storetest.Recorder
	mu      sync.Mutex
	watched []store.WatchedMailbox
	users   []string
}

// watchUsers sets the users whose every mailbox and mailbox list are
// watched (store.UserWatchLister).
func (r *watchRecorder) watchUsers(users ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users = users
}

func (r *watchRecorder) WatchedUsers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.users...)
}

func (r *watchRecorder) watch(w ...store.WatchedMailbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watched = w
}

func (r *watchRecorder) WatchedMailboxes() []store.WatchedMailbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.WatchedMailbox(nil), r.watched...)
}

// openWatching opens a Store on a fresh database that checks the heads
// of rec's watched mailboxes every interval, with user "u" and one
// message in INBOX; it returns the Store, INBOX's id and HIGHESTMODSEQ.
func openWatching(t *testing.T, rec *watchRecorder, interval time.Duration) (*Store, int64, uint64) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(t), Options{Notifier: rec, Logger: quietLogger(), headCheckInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}})
	if err != nil {
		t.Fatal(err)
	}
	return s, res.MailboxID, highest(t, a)
}

// bumpUnsignalled advances mailbox id's HIGHESTMODSEQ in the database,
// as a write whose change signal was lost does, and returns it.
func bumpUnsignalled(t *testing.T, s *Store, id int64) uint64 {
	t.Helper()
	var m uint64
	if err := s.pool.QueryRow(context.Background(), `UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1
		RETURNING highestmodseq`, id).Scan(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// reported collects, for d, the modseqs rec hears for mailbox id of "u".
func reported(rec *watchRecorder, id int64, d time.Duration) []uint64 {
	var got []uint64
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for _, c := range rec.Take() {
			if c.User == "u" && c.MailboxID == id {
				got = append(got, c.ModSeq)
			}
		}
		if len(got) > 0 {
			return got
		}
	}
	return got
}

// reportsLostChange advances mailbox id's head without a signal
// (bumpUnsignalled) and fails unless rec hears of it, once, within 3 s;
// it returns the new head.
func reportsLostChange(t *testing.T, rec *watchRecorder, s *Store, id int64) uint64 {
	t.Helper()
	lost := bumpUnsignalled(t, s, id)
	if got := reported(rec, id, 3*time.Second); len(got) != 1 || got[0] != lost {
		t.Fatalf("reported %v for a lost change to modseq %d", got, lost)
	}
	return lost
}

// TestHeadCheckReportsLostChanges: a change to a watched mailbox whose
// signal never came is reported by the next check of the heads, once;
// a mailbox the node is current with, and one deleted, are not.
func TestHeadCheckReportsLostChanges(t *testing.T) {
	rec := &watchRecorder{}
	s, inbox, m := openWatching(t, rec, 50*time.Millisecond)
	rec.watch(store.WatchedMailbox{User: "u", MailboxID: inbox, ModSeq: m},
		store.WatchedMailbox{User: "u", MailboxID: inbox + 1000, ModSeq: 1})
	rec.Take()
	if got := reported(rec, inbox, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("reported %v for a mailbox the node is current with", got)
	}
	if other := rec.Take(); len(other) != 0 {
		t.Fatalf("reported %v", other)
	}
	lost := reportsLostChange(t, rec, s, inbox)
	rec.watch(store.WatchedMailbox{User: "u", MailboxID: inbox, ModSeq: lost})
	if got := reported(rec, inbox, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("reported %v again after the node caught up", got)
	}
}

// TestHeadCheckAfterReconnect: when the listening connection broke
// (signals sent meanwhile are lost), the heads are checked as soon as it
// listens again, not only at the next interval.
func TestHeadCheckAfterReconnect(t *testing.T) {
	rec := &watchRecorder{}
	s, inbox, m := openWatching(t, rec, time.Hour)
	rec.watch(store.WatchedMailbox{User: "u", MailboxID: inbox, ModSeq: m})
	rec.Take()
	// The change sends no signal at all; with the interval an hour,
	// only the check after the reconnect can report it.
	lost := bumpUnsignalled(t, s, inbox)
	var killed int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+notifyChannel+`'`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listening connections, %v", killed, err)
	}
	if got := reported(rec, inbox, 5*time.Second); len(got) != 1 || got[0] != lost {
		t.Fatalf("reported %v after the reconnect, want the lost change to modseq %d", got, lost)
	}
}

// TestHeadCheckWatchedUsers: for a user whose every mailbox is watched
// (NOTIFY), a lost change to any of them is reported from the check
// after the node started watching the user on, and a mailbox created,
// deleted or renamed, or a subscription changed, without a signal is
// reported as a change of the list.
func TestHeadCheckWatchedUsers(t *testing.T) {
	ctx := context.Background()
	rec := &watchRecorder{}
	s, inbox, _ := openWatching(t, rec, 50*time.Millisecond)
	rec.watchUsers("u")
	rec.Take()
	rec.TakeLists()
	if got := reported(rec, inbox, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("reported %v before anything changed", got)
	}
	if l := rec.TakeLists(); len(l) != 0 {
		t.Fatalf("list changes %v before anything changed", l)
	}
	reportsLostChange(t, rec, s, inbox)
	// A change made through the node is told once, by its commit; the
	// checks after it know of it.
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(2)}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	var told int
	for _, c := range rec.Take() {
		if c.MailboxID == inbox {
			told++
		}
	}
	if told != 1 {
		t.Fatalf("a change made through the node was told %d times, want once", told)
	}
	listChanged := func(what string) {
		t.Helper()
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if l := rec.TakeLists(); len(l) > 0 {
				if l[0] != "u" {
					t.Fatalf("list change of %v after %s", l, what)
				}
				return
			}
		}
		t.Fatalf("no list change reported after %s", what)
	}
	// unsignalled changes the list by sql, sending no signal.
	unsignalled := func(sql, what string) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
		listChanged(what)
	}
	unsignalled(`INSERT INTO mailboxes(user_id, name, uidvalidity) SELECT id, 'Quiet', 1 FROM users WHERE name = 'u'`,
		"a mailbox created without a signal")
	unsignalled(`DELETE FROM mailboxes WHERE name = 'Quiet'`, "a mailbox deleted without a signal")
	// A mailbox created through the node is told once, by its commit.
	if err := a.CreateMailbox(ctx, "Loud", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if l := rec.TakeLists(); len(l) != 1 {
		t.Fatalf("a mailbox created through the node was told as %d list changes, want 1", len(l))
	}
	// The user's last mailbox deleted without a signal, then a first
	// one created: a user without mailboxes has an empty list.
	unsignalled(`DELETE FROM mailboxes WHERE user_id = (SELECT id FROM users WHERE name = 'u')`,
		"the last mailbox deleted without a signal")
	unsignalled(`INSERT INTO mailboxes(user_id, name, uidvalidity) SELECT id, 'First', 1 FROM users WHERE name = 'u'`,
		"a first mailbox created without a signal")
	unsignalled(`UPDATE mailboxes SET name = 'Renamed' WHERE name = 'First' AND user_id = (SELECT id FROM users WHERE name = 'u')`,
		"a mailbox renamed without a signal")
	unsignalled(`INSERT INTO subscriptions(user_id, name) SELECT id, 'Elsewhere' FROM users WHERE name = 'u'`,
		"a subscription added without a signal")
	unsignalled(`DELETE FROM subscriptions WHERE name = 'Elsewhere'`, "a subscription removed without a signal")
	// Subscribing and renaming through the node are told once, by their
	// commits.
	if err := a.SetSubscribed(ctx, "Renamed", true); err != nil {
		t.Fatal(err)
	}
	if err := a.RenameMailbox(ctx, "Renamed", "Again"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if l := rec.TakeLists(); len(l) != 2 {
		t.Fatalf("a subscription and a rename through the node were told as %d list changes, want 2", len(l))
	}
	// An ACL entry naming the user, made without a signal, is told as an
	// ACL change for the user; one made through the node, once.
	// aclTold waits for the ACL changes want to be told.
	aclTold := func(what string, want []string) {
		t.Helper()
		for end := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if acls := rec.TakeACLs(); len(acls) > 0 {
				if !slices.Equal(acls, want) {
					t.Fatalf("ACL changes %q after %s, want %q", acls, what, want)
				}
				return
			}
			if time.Now().After(end) {
				t.Fatalf("no ACL change reported after %s", what)
			}
		}
	}
	rec.TakeACLs()
	if _, err := s.pool.Exec(ctx, `INSERT INTO acl(mailbox_id, identifier, rights) SELECT id, 'u', 'lr' FROM mailboxes WHERE name = 'Again'`); err != nil {
		t.Fatal(err)
	}
	aclTold("an entry made without a signal", []string{" u"})
	if err := s.CreateUser(ctx, "v", "h"); err != nil {
		t.Fatal(err)
	}
	v, err := s.Account(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.SetACL(ctx, "INBOX", "u", store.FlagsReplace, "lr"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if acls := rec.TakeACLs(); !slices.Equal(acls, []string{"v u"}) {
		t.Fatalf("an ACL entry made through the node was told as %q, want once as \"v u\"", acls)
	}
	// A mailbox created under one shared with the user inherits its entry,
	// and its deletion removes it: the node's list change tells those,
	// not the check.
	for _, step := range []func() error{
		func() error { return v.CreateMailbox(ctx, "INBOX/Kid", "") },
		func() error { return v.DeleteMailbox(ctx, "INBOX/Kid") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if acls := rec.TakeACLs(); len(acls) != 0 {
			t.Fatalf("ACL changes %q after a shared mailbox's child was created or deleted through the node, want none", acls)
		}
	}
	// An entry for anyone made without a signal is told once, for anyone.
	if _, err := s.pool.Exec(ctx, `INSERT INTO acl(mailbox_id, identifier, rights) SELECT id, 'anyone', 'l' FROM mailboxes WHERE name = 'Again'`); err != nil {
		t.Fatal(err)
	}
	aclTold("an entry for anyone made without a signal", []string{" anyone"})
	// A user no longer watched is forgotten: watched again, its entries
	// are taken as they are, whatever changed meanwhile.
	rec.watchUsers()
	time.Sleep(300 * time.Millisecond)
	if _, err := s.pool.Exec(ctx, `DELETE FROM acl WHERE identifier = 'u'`); err != nil {
		t.Fatal(err)
	}
	rec.watchUsers("u")
	time.Sleep(300 * time.Millisecond)
	if acls := rec.TakeACLs(); len(acls) != 0 {
		t.Fatalf("ACL changes %q when watched again, want none", acls)
	}
}
