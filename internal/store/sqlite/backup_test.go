package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/durable"
	"github.com/tern-imap/tern/internal/store"
)

// msgView is one message as a test sees it.
type msgView struct {
	modseq uint64
	flags  []string
	body   []byte
}

// mboxView is one mailbox as a test sees it.
type mboxView struct {
	uidValidity, uidNext uint32
	highest              uint64
	msgs                 map[uint32]msgView
}

// viewAccount reads every mailbox of a with every message's flags,
// modseq and bytes.
func viewAccount(t *testing.T, a store.Account) map[string]mboxView {
	t.Helper()
	ctx := context.Background()
	mbs, err := a.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]mboxView{}
	for _, mb := range mbs {
		st, uids, err := a.Snapshot(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		v := mboxView{uidValidity: st.UIDValidity, uidNext: st.UIDNext, highest: st.HighestModSeq, msgs: map[uint32]msgView{}}
		err = a.Fetch(ctx, mb.ID, uids, store.WantFlags, func(m *store.Message) error {
			b, err := a.OpenBody(ctx, mb.ID, m.UID)
			if err != nil {
				return err
			}
			defer b.Close()
			body := make([]byte, b.Size())
			if _, err := b.ReadAt(body, 0); err != nil {
				return err
			}
			v.msgs[m.UID] = msgView{modseq: m.ModSeq, flags: slices.Clone(m.Flags), body: body}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		out[mb.Name] = v
	}
	return out
}

// acked is a message whose Append returned.
type acked struct {
	user, mailbox string
	uid           uint32
	flags         []string
	body          []byte
}

// appendLoad appends to INBOX and Archive of user until stop is closed,
// recording every acknowledged message, and churns Trash (append, then
// expunge) so that body files are removed while a backup runs.
type appendLoad struct {
	mu    sync.Mutex
	acks  []acked
	errs  []error
	count atomic.Int64
}

func (l *appendLoad) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *appendLoad) appender(a store.Account, mailbox string, worker int, stop <-chan struct{}) {
	ctx := context.Background()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		body := fmt.Appendf(nil, "Subject: %s %s %d %d\r\n\r\n%s\r\n", a.User(), mailbox, worker, i,
			strings.Repeat(fmt.Sprintf("line %d of worker %d\r\n", i, worker), 1+i%20))
		var flags []string
		if i%3 == 0 {
			flags = []string{`\Seen`}
		}
		res, err := a.Append(ctx, mailbox, []store.NewMessage{{Body: body, Flags: flags}})
		if err != nil {
			l.fail(fmt.Errorf("append: %w", err))
			return
		}
		l.mu.Lock()
		l.acks = append(l.acks, acked{user: a.User(), mailbox: mailbox, uid: res.UIDs[0], flags: flags, body: body})
		l.mu.Unlock()
		l.count.Add(1)
	}
}

func (l *appendLoad) churner(a store.Account, stop <-chan struct{}) {
	ctx := context.Background()
	mb, err := a.Mailbox(ctx, "Trash")
	if err != nil {
		l.fail(err)
		return
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		res, err := a.Append(ctx, "Trash", []store.NewMessage{{Body: fmt.Appendf(nil, "Subject: churn %d\r\n\r\nx\r\n", i)}})
		if err != nil {
			l.fail(fmt.Errorf("churn append: %w", err))
			return
		}
		if _, err := a.Expunge(ctx, mb.ID, res.UIDs, false); err != nil {
			l.fail(fmt.Errorf("churn expunge: %w", err))
			return
		}
	}
}

// snapshotAcks returns the messages acknowledged so far.
func (l *appendLoad) snapshotAcks() []acked {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acks)
}

func newStoreWithUsers(t *testing.T, dir string, users ...string) (*Store, map[string]store.Account) {
	t.Helper()
	ctx := context.Background()
	s := openTest(t, dir, nil)
	t.Cleanup(func() { s.Close() })
	accts := map[string]store.Account{}
	for _, u := range users {
		if err := s.CreateUser(ctx, u, "hash-"+u); err != nil {
			t.Fatal(err)
		}
		a, err := s.Account(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		for _, mb := range []string{"Archive", "Trash"} {
			if err := a.CreateMailbox(ctx, mb, ""); err != nil {
				t.Fatal(err)
			}
		}
		accts[u] = a
	}
	return s, accts
}

// TestBackupUnderLoad backs up a store while goroutines append and
// expunge, restores it, and checks that every message acknowledged before
// the backup began is there byte for byte with its UID, flags and modseq,
// that every mailbox kept its UIDVALIDITY, and that the restored store is
// consistent.
func TestBackupUnderLoad(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	data, dest, restored := filepath.Join(root, "data"), filepath.Join(root, "backup"), filepath.Join(root, "restored")
	users := []string{"alice", "bob"}
	_, accts := newStoreWithUsers(t, data, users...)
	if err := accts["bob"].SetQuota(ctx, 1<<40, 0); err != nil {
		t.Fatal(err)
	}

	load := &appendLoad{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, u := range users {
		for w, mb := range []string{"INBOX", "INBOX", "Archive"} {
			wg.Go(func() { load.appender(accts[u], mb, w, stop) })
		}
		wg.Go(func() { load.churner(accts[u], stop) })
	}
	for load.count.Load() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	before := load.snapshotAcks()
	var progress bytes.Buffer
	m, err := Backup(ctx, data, dest, BackupOptions{TernVersion: "test", Progress: &progress})
	during := load.count.Load() - int64(len(before))
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("Backup: %v", err)
	}
	for load.count.Load() < int64(len(before))+during+100 {
		time.Sleep(5 * time.Millisecond) // keep writing after the backup too
	}
	close(stop)
	wg.Wait()
	if len(load.errs) > 0 {
		t.Fatalf("load failed: %v", load.errs)
	}
	t.Logf("acknowledged before the backup: %d; appended during it: %d\n%s", len(before), during, progress.String())
	if during == 0 {
		t.Log("no append completed during the backup (it was fast); consistency is still checked")
	}
	if len(m.Users) != 2 || m.Messages < int64(len(before)) {
		t.Fatalf("manifest: %d users, %d messages; want 2 users, >= %d messages", len(m.Users), m.Messages, len(before))
	}

	if _, err := Restore(ctx, dest, restored, RestoreOptions{Logger: quietLogger()}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	r := openTest(t, restored, nil)
	defer r.Close()
	if got, _ := r.Users(ctx); !slices.Equal(got, users) {
		t.Fatalf("restored users %q, want %q", got, users)
	}
	for _, u := range users {
		if h, err := r.PasswordHash(ctx, u); err != nil || h != "hash-"+u {
			t.Errorf("restored password hash of %s: %q %v", u, h, err)
		}
		ra, err := r.Account(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		compareViews(t, u, viewAccount(t, accts[u]), viewAccount(t, ra), before)
		if q, err := ra.Quota(ctx); err != nil || (u == "bob") != (q.StorageLimit == 1<<40) {
			t.Errorf("restored quota of %s: %+v %v", u, q, err)
		}
		ra.Close()
	}
	if problems, err := r.Check(ctx, false); err != nil || len(problems) > 0 {
		t.Fatalf("check of the restored store: %q %v", problems, err)
	}
}

// compareViews checks a restored account against the live one: same
// mailboxes and UIDVALIDITYs; every message acknowledged before the
// backup present with its bytes and flags; every restored message of the
// append-only mailboxes exactly as it is live (UID, modseq, flags, bytes).
func compareViews(t *testing.T, user string, live, restored map[string]mboxView, before []acked) {
	t.Helper()
	for name, lv := range live {
		rv, ok := restored[name]
		if !ok {
			t.Errorf("%s: mailbox %q missing after restore", user, name)
			continue
		}
		if rv.uidValidity != lv.uidValidity {
			t.Errorf("%s/%s: UIDVALIDITY %d, want %d", user, name, rv.uidValidity, lv.uidValidity)
		}
		if rv.uidNext > lv.uidNext || rv.highest > lv.highest {
			t.Errorf("%s/%s: restored UIDNEXT %d HIGHESTMODSEQ %d beyond live %d %d", user, name, rv.uidNext, rv.highest, lv.uidNext, lv.highest)
		}
		if name == "Trash" {
			continue // churned: messages come and go
		}
		for uid, rm := range rv.msgs {
			lm, ok := lv.msgs[uid]
			if !ok || lm.modseq != rm.modseq || !slices.Equal(lm.flags, rm.flags) || !bytes.Equal(lm.body, rm.body) {
				t.Errorf("%s/%s UID %d: restored (modseq %d, %q) differs from live (%v, modseq %d, %q)",
					user, name, uid, rm.modseq, rm.flags, ok, lm.modseq, lm.flags)
			}
		}
	}
	missing := 0
	for _, a := range before {
		if a.user != user {
			continue
		}
		rm, ok := restored[a.mailbox].msgs[a.uid]
		switch {
		case !ok:
			missing++
		case !bytes.Equal(rm.body, a.body):
			t.Errorf("%s/%s UID %d: restored body differs", user, a.mailbox, a.uid)
		case !slices.Equal(rm.flags, a.flags) && !(len(rm.flags) == 0 && len(a.flags) == 0):
			t.Errorf("%s/%s UID %d: restored flags %q, appended with %q", user, a.mailbox, a.uid, rm.flags, a.flags)
		}
	}
	if missing > 0 {
		t.Errorf("%s: %d messages acknowledged before the backup are missing after restore", user, missing)
	}
}

// TestBackupRetakesSnapshotWhenBodiesGo makes an expunge remove a body
// between each snapshot and its copying: the backup takes new snapshots,
// the last one holding the writers, and the result is consistent.
func TestBackupRetakesSnapshotWhenBodiesGo(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	data, dest, restored := filepath.Join(root, "data"), filepath.Join(root, "backup"), filepath.Join(root, "restored")
	_, accts := newStoreWithUsers(t, data, "alice")
	a := accts["alice"]
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	appendOne := func(i int) uint32 {
		res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i)}})
		if err != nil {
			t.Fatal(err)
		}
		return res.UIDs[0]
	}
	keep := appendOne(0)
	victim := appendOne(1)
	var snapshots, lockedSnapshots int
	testAfterSnapshot = func(src string, locked bool) {
		snapshots++
		if locked {
			lockedSnapshots++
			return // writers wait now; an expunge would wait for the backup
		}
		// The victim is in this snapshot and its body not yet copied:
		// expunge it (its file goes now) and add the next victim.
		if _, err := a.Expunge(ctx, inbox.ID, []uint32{victim}, false); err != nil {
			t.Error(err)
		}
		victim = appendOne(snapshots + 1)
	}
	defer func() { testAfterSnapshot = nil }()
	m, err := Backup(ctx, data, dest, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := maxFreeAttempts + 1; snapshots != want || lockedSnapshots != 1 {
		t.Fatalf("%d snapshots (%d locked), want %d (1 locked)", snapshots, lockedSnapshots, want)
	}
	if u := m.Users[0]; u.Snapshots != snapshots || !u.Locked || u.Messages != 2 || u.Bodies != 2 {
		t.Fatalf("manifest user %+v", u)
	}
	if _, err := Restore(ctx, dest, restored, RestoreOptions{Logger: quietLogger()}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	r := openTest(t, restored, nil)
	defer r.Close()
	ra, err := r.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	got := viewAccount(t, ra)["INBOX"].msgs
	live := viewAccount(t, a)["INBOX"].msgs
	if len(got) != 2 || got[keep].modseq != live[keep].modseq || got[victim].modseq != live[victim].modseq {
		t.Fatalf("restored INBOX %v, want UIDs %d and %d as live", got, keep, victim)
	}
	// Bodies copied in earlier attempts and expunged since are not left in
	// the backup (check would call them unreferenced).
	if problems, err := r.Check(ctx, false); err != nil || len(problems) > 0 {
		t.Fatalf("check: %q %v", problems, err)
	}
}

// TestBackupRefusals: an existing non-empty DEST, a DEST inside the data
// directory, no store; Restore into a non-empty directory, from an
// incomplete or damaged backup.
func TestBackupRefusals(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	_, accts := newStoreWithUsers(t, data, "alice")
	if _, err := accts["alice"].Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\ny\r\n")}}); err != nil {
		t.Fatal(err)
	}

	full := filepath.Join(root, "full")
	os.MkdirAll(full, 0o700)
	os.WriteFile(filepath.Join(full, "precious"), []byte("keep me"), 0o600)
	if _, err := Backup(ctx, data, full, BackupOptions{}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("backup into a non-empty directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(full, "precious")); err != nil || string(b) != "keep me" {
		t.Fatalf("the non-empty DEST was touched: %q %v", b, err)
	}
	if _, err := Backup(ctx, data, filepath.Join(data, "backup"), BackupOptions{}); err == nil || !strings.Contains(err.Error(), "inside the data directory") {
		t.Fatalf("backup into the data directory: %v", err)
	}
	if _, err := Backup(ctx, filepath.Join(root, "nothing"), filepath.Join(root, "b0"), BackupOptions{}); err == nil || !strings.Contains(err.Error(), "no store") {
		t.Fatalf("backup of no store: %v", err)
	}

	// An existing empty DEST is fine.
	dest := filepath.Join(root, "backup")
	os.Mkdir(dest, 0o700)
	if _, err := Backup(ctx, data, dest, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, dest, full, RestoreOptions{Logger: quietLogger()}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a non-empty directory: %v", err)
	}
	if _, err := Restore(ctx, dest, data, RestoreOptions{Logger: quietLogger()}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore over the live data directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(full, "precious")); err != nil || string(b) != "keep me" {
		t.Fatalf("the non-empty target was touched: %q %v", b, err)
	}

	// Incomplete: no manifest.
	incomplete := filepath.Join(root, "incomplete")
	os.Mkdir(incomplete, 0o700)
	os.WriteFile(filepath.Join(incomplete, "tern.db"), nil, 0o600)
	if _, err := Restore(ctx, incomplete, filepath.Join(root, "r1"), RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "not a complete tern backup") {
		t.Fatalf("restore of an incomplete backup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "r1")); !os.IsNotExist(err) {
		t.Fatalf("restore of an incomplete backup created its target: %v", err)
	}

	// Damaged: one byte of a user database changed.
	db := filepath.Join(dest, "users", "1", "mail.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.WriteFile(db, b, 0o600)
	if _, err := Restore(ctx, dest, filepath.Join(root, "r2"), RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("restore of a damaged backup: %v", err)
	}
}

// TestBackupUserDeletedMeanwhile: a user deleted after the user list was
// snapshotted is left out; user and mailbox ids are never reused after a
// restore; every directory written was fsynced.
func TestBackupUserDeletedMeanwhile(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	data, dest, restored := filepath.Join(root, "data"), filepath.Join(root, "backup"), filepath.Join(root, "restored")
	s, accts := newStoreWithUsers(t, data, "alice", "bob", "carol")
	accts["bob"].Close()
	if err := s.DeleteUser(ctx, "carol"); err != nil { // the highest id: only sqlite_sequence remembers it
		t.Fatal(err)
	}
	deleted := false
	testAfterSnapshot = func(src string, locked bool) {
		if !deleted {
			deleted = true
			if err := s.DeleteUser(ctx, "bob"); err != nil {
				t.Error(err)
			}
		}
	}
	var synced sync.Map
	testSyncDir = func(d string) error {
		synced.Store(filepath.Clean(d), true)
		return durable.SyncDir(d)
	}
	defer func() { testAfterSnapshot, testSyncDir = nil, nil }()
	var progress bytes.Buffer
	m, err := Backup(ctx, data, dest, BackupOptions{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Users) != 1 || m.Users[0].Name != "alice" || !strings.Contains(progress.String(), `user "bob": deleted during the backup, left out`) {
		t.Fatalf("users %+v, progress:\n%s", m.Users, progress.String())
	}
	filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if _, ok := synced.Load(filepath.Clean(p)); !ok {
				t.Errorf("directory %s was not fsynced", p)
			}
		}
		return nil
	})
	testSyncDir = nil

	if _, err := Restore(ctx, dest, restored, RestoreOptions{Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, restored, nil)
	defer r.Close()
	if got, _ := r.Users(ctx); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("restored users %q", got)
	}
	if err := r.CreateUser(ctx, "dave", "h"); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := r.db.QueryRowContext(ctx, `SELECT id FROM users WHERE name = 'dave'`).Scan(&id); err != nil || id != 4 {
		t.Fatalf("new user after restore got id %d (%v), want 4: ids of deleted users are not reused", id, err)
	}
	if _, err := os.Stat(filepath.Join(restored, "users", "2")); !os.IsNotExist(err) {
		t.Fatalf("bob's directory restored: %v", err)
	}
}

// BenchmarkBackup backs up (and restores) one user with 1,000 messages of
// 10 KB: go test -run X -bench Backup ./internal/store/sqlite/
func BenchmarkBackup(b *testing.B) {
	ctx := context.Background()
	root := b.TempDir()
	data := filepath.Join(root, "data")
	s, err := Open(ctx, data, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateUser(ctx, "alice", "h"); err != nil {
		b.Fatal(err)
	}
	a, err := s.Account(ctx, "alice")
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	filler := strings.Repeat("x", 10000)
	for i := range 20 {
		var msgs []store.NewMessage
		for j := range 50 {
			msgs = append(msgs, store.NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\n%s\r\n", i*50+j, filler)})
		}
		if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("backup", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := Backup(ctx, data, filepath.Join(root, fmt.Sprint("b", i)), BackupOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("restore", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := Restore(ctx, filepath.Join(root, "b0"), filepath.Join(root, fmt.Sprint("r", i)), RestoreOptions{Logger: quietLogger()}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
