package storecopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openPair opens a fresh sqlite store and a fresh postgres database.
func openPair(t *testing.T) (*sqlite.Store, *postgres.Store) {
	t.Helper()
	return openPairWith(t, postgres.Options{})
}

// openPairWith is openPair with the postgres store's options.
func openPairWith(t *testing.T, opts postgres.Options) (*sqlite.Store, *postgres.Store) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	src, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	opts.Logger = quiet()
	dst, err := postgres.Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return src, dst
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// account opens user's account in st for the rest of the test.
func account(t *testing.T, st store.Store, user string) store.Account {
	t.Helper()
	a, err := st.Account(context.Background(), user)
	must(t, err)
	t.Cleanup(func() { a.Close() })
	return a
}

func msg(i int, extra string) []byte {
	return fmt.Appendf(nil, "From: a%d@example.org\r\nTo: b@example.org\r\nSubject: message %d%s\r\nMessage-ID: <m%d@example.org>\r\n"+
		"Date: Mon, 1 Jun 2026 10:%02d:00 +0200\r\n\r\nbody of %d\r\n%s\r\n", i, i, extra, i, i%60, i, strings.Repeat("x", i*37))
}

// fillSource gives src two users with varied mail and history: flags
// and keywords, dates in several zones, expunges (tombstones), COPY and
// MOVE, a \Noselect parent, special use, subscriptions, annotations, a
// Sieve script, ACLs, another user's private \Seen, a quota, \Recent
// claimed partly.
func fillSource(t *testing.T, src store.Store) {
	t.Helper()
	ctx := context.Background()
	must(t, src.CreateUser(ctx, "alice", "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"))
	must(t, src.CreateUser(ctx, "bob", "$2a$10$bobbobbobbobbobbobbobuQ"))
	a, err := src.Account(ctx, "alice")
	must(t, err)
	defer a.Close()
	must(t, a.CreateMailbox(ctx, "Archive/2026", ""))
	must(t, a.CreateMailbox(ctx, "Sent", `\Sent`))
	must(t, a.CreateMailbox(ctx, "Old/Sub", ""))
	must(t, a.DeleteMailbox(ctx, "Old")) // stays as a \Noselect parent
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -5*3600-1800)}
	var msgs []store.NewMessage
	for i := range 40 {
		flags := []string{}
		switch i % 5 {
		case 1:
			flags = []string{`\Seen`}
		case 2:
			flags = []string{`\Seen`, `\Flagged`, "$Important"}
		case 3:
			flags = []string{"Project-X", `\Answered`}
		case 4:
			flags = []string{`\Draft`, `\Deleted`}
		}
		msgs = append(msgs, store.NewMessage{Body: msg(i, ""), Flags: flags,
			InternalDate: time.Date(2026, 3, 1+i%28, i%24, i, 7, 0, zones[i%3])})
	}
	for i := 0; i < len(msgs); i += 8 { // several modseqs: uid_log rows
		_, err := a.Append(ctx, "INBOX", msgs[i:i+8])
		must(t, err)
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{3, 4, 5, 20}, store.FlagsAdd, []string{"$Label1", `\Seen`}, 0, false)
	must(t, err)
	_, err = a.Expunge(ctx, inbox.ID, []uint32{6, 7, 8, 15}, false)
	must(t, err)
	arch, err := a.Mailbox(ctx, "Archive/2026")
	must(t, err)
	_, err = a.Copy(ctx, inbox.ID, []uint32{1, 2, 3, 9}, "Archive/2026")
	must(t, err)
	_, err = a.Move(ctx, inbox.ID, []uint32{10, 11}, "Archive/2026")
	must(t, err)
	_, err = a.StoreFlags(ctx, arch.ID, []uint32{1}, store.FlagsReplace, []string{`\Flagged`}, 0, false)
	must(t, err)
	_, err = a.ClaimRecent(ctx, inbox.ID, 30)
	must(t, err)
	_, err = a.Append(ctx, "Sent", []store.NewMessage{{Body: msg(99, " (sent)"), Flags: []string{`\Seen`}}})
	must(t, err)
	must(t, a.SetSubscribed(ctx, "INBOX", true))
	must(t, a.SetSubscribed(ctx, "Archive/2026", true))
	must(t, a.SetQuota(ctx, 10<<20, 5000))
	must(t, a.SetMetadata(ctx, "", []store.MetadataEntry{{Name: "/private/comment", Value: []byte("server note")}}))
	must(t, a.SetMetadata(ctx, "Archive/2026", []store.MetadataEntry{{Name: "/shared/vendor/x/y", Value: []byte("v")}}))
	must(t, a.PutSieveScript(ctx, "main", []byte("keep;\r\n")))
	must(t, a.SetActiveSieveScript(ctx, "main"))
	_, err = a.SetACL(ctx, "Archive/2026", "bob", store.FlagsReplace, "lr")
	must(t, err)
	// bob's own \Seen on alice's shared INBOX: seen, and seen then unseen.
	_, err = a.SetACL(ctx, "INBOX", "bob", store.FlagsReplace, "lrs")
	must(t, err)
	_, err = a.SetPrivateSeen(ctx, inbox.ID, "bob", []uint32{1, 3, 9}, true)
	must(t, err)
	_, err = a.SetPrivateSeen(ctx, inbox.ID, "bob", []uint32{3}, false)
	must(t, err)

	b, err := src.Account(ctx, "bob")
	must(t, err)
	defer b.Close()
	for i := range 3 {
		_, err := b.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(200+i, "")}})
		must(t, err)
	}
}

// compareStores requires dst to hold exactly what src holds, as every
// store.Account reader sees it (mailbox ids aside).
func compareStores(t *testing.T, src, dst store.Store) {
	t.Helper()
	ctx := context.Background()
	su, err := src.Users(ctx)
	must(t, err)
	du, err := dst.Users(ctx)
	must(t, err)
	if !reflect.DeepEqual(su, du) {
		t.Fatalf("users: %v, copy %v", su, du)
	}
	for _, u := range su {
		sh, _ := src.PasswordHash(ctx, u)
		dh, _ := dst.PasswordHash(ctx, u)
		if sh != dh {
			t.Errorf("%s: password hash %q, copy %q", u, sh, dh)
		}
		sa, err := src.Account(ctx, u)
		must(t, err)
		da, err := dst.Account(ctx, u)
		must(t, err)
		compareAccounts(t, sa, da)
		sa.Close()
		da.Close()
	}
}

// same fails the test unless a and b are deeply equal.
func same(t *testing.T, what string, a, b any) {
	t.Helper()
	if !reflect.DeepEqual(a, b) && !bothEmpty(a, b) {
		t.Errorf("%s:\n source %+v\n copy   %+v", what, a, b)
	}
}

// bothEmpty: nil and empty slices say the same.
func bothEmpty(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Kind() == reflect.Slice && vb.Kind() == reflect.Slice && va.Len() == 0 && vb.Len() == 0
}

func compareAccounts(t *testing.T, sa, da store.Account) {
	t.Helper()
	ctx := context.Background()
	u := sa.User()
	sb, err := sa.Mailboxes(ctx)
	must(t, err)
	db, err := da.Mailboxes(ctx)
	must(t, err)
	if len(sb) != len(db) {
		t.Fatalf("%s: mailboxes %+v, copy %+v", u, sb, db)
	}
	for i := range sb {
		s, d := sb[i], db[i]
		sid, did := s.ID, d.ID
		s.ID, d.ID = 0, 0
		same(t, u+" mailbox", s, d)
		if s.NoSelect {
			continue
		}
		compareMailbox(t, sa, da, s.Name, sid, did)
		sacl, err := sa.ACL(ctx, s.Name)
		must(t, err)
		dacl, err := da.ACL(ctx, s.Name)
		must(t, err)
		same(t, u+" "+s.Name+" ACL", sacl, dacl)
		sm, err := sa.GetMetadata(ctx, s.Name, metadataRoots, store.MetadataDepthInfinity)
		must(t, err)
		dm, err := da.GetMetadata(ctx, s.Name, metadataRoots, store.MetadataDepthInfinity)
		must(t, err)
		same(t, u+" "+s.Name+" metadata", sm, dm)
	}
	for _, f := range []func(store.Account) (any, error){
		func(a store.Account) (any, error) { return a.Subscriptions(ctx) },
		func(a store.Account) (any, error) { return a.(store.HistorySource).LastUIDValidity(ctx) },
		func(a store.Account) (any, error) { return a.Quota(ctx) },
		func(a store.Account) (any, error) { return a.SieveScripts(ctx) },
		func(a store.Account) (any, error) {
			return a.GetMetadata(ctx, "", metadataRoots, store.MetadataDepthInfinity)
		},
		func(a store.Account) (any, error) {
			b, n, err := a.ActiveSieveScript(ctx)
			return fmt.Sprint(string(b), n), err
		},
	} {
		s, err := f(sa)
		must(t, err)
		d, err := f(da)
		must(t, err)
		same(t, u+" account state", s, d)
	}
}

const wantAll = store.WantFlags | store.WantDates | store.WantSize | store.WantEnvelope | store.WantBody |
	store.WantBodyStructure | store.WantIDs | store.WantThreading | store.WantHeader | store.WantPreview

func compareMailbox(t *testing.T, sa, da store.Account, name string, sid, did int64) {
	t.Helper()
	ctx := context.Background()
	what := sa.User() + " " + name
	ss, suids, err := sa.Snapshot(ctx, sid)
	must(t, err)
	ds, duids, err := da.Snapshot(ctx, did)
	must(t, err)
	ss.ID, ds.ID = 0, 0
	same(t, what+" status", ss, ds)
	same(t, what+" uids", suids, duids)
	fetchAll := func(a store.Account, id int64) []store.Message {
		var out []store.Message
		must(t, a.Fetch(ctx, id, suids, wantAll, func(m *store.Message) error {
			m.SaveDate = m.SaveDate.UTC()
			out = append(out, *m)
			return nil
		}))
		return out
	}
	sm, dm := fetchAll(sa, sid), fetchAll(da, did)
	if len(sm) != len(dm) {
		t.Fatalf("%s: %d messages, copy %d", what, len(sm), len(dm))
	}
	for i := range sm {
		same(t, fmt.Sprintf("%s uid %d", what, sm[i].UID), sm[i], dm[i])
		sbody, err := readBody(ctx, sa, sid, sm[i].UID)
		must(t, err)
		dbody, err := readBody(ctx, da, did, dm[i].UID)
		must(t, err)
		if !bytes.Equal(sbody, dbody) {
			t.Errorf("%s uid %d: body differs", what, sm[i].UID)
		}
	}
	// The history itself, when both stores hand it out.
	if sh, ok := sa.(store.HistorySource); ok {
		if dh, ok := da.(store.HistorySource); ok {
			shist, err := sh.MailboxHistory(ctx, sid)
			must(t, err)
			dhist, err := dh.MailboxHistory(ctx, did)
			must(t, err)
			same(t, what+" history", shist, dhist)
		}
	}
	// Other users' own \Seen (fillSource's users), through the store's
	// own reader: a history reader that missed them reads none on both.
	for _, viewer := range []string{"alice", "bob"} {
		sv, err := sa.PrivateSeen(ctx, sid, viewer, nil, 0)
		must(t, err)
		dv, err := da.PrivateSeen(ctx, did, viewer, nil, 0)
		must(t, err)
		same(t, what+" private \\Seen of "+viewer, sv, dv)
	}
	// What a client synchronised at any earlier modseq would be told.
	for ms := uint64(0); ms <= ss.HighestModSeq; ms++ {
		sv, err := sa.Vanished(ctx, sid, ms)
		must(t, err)
		dv, err := da.Vanished(ctx, did, ms)
		must(t, err)
		same(t, fmt.Sprintf("%s vanished since %d", what, ms), sv, dv)
		for _, sinceUID := range []uint32{0, 5, 30} {
			sc, err := sa.Changes(ctx, sid, ms, sinceUID)
			must(t, err)
			dc, err := da.Changes(ctx, did, ms, sinceUID)
			must(t, err)
			same(t, fmt.Sprintf("%s changes since %d/%d", what, ms, sinceUID), sc, dc)
		}
	}
}

// TestCopySQLiteToPostgres: everything of a varied sqlite store arrives
// in PostgreSQL as the source has it, and a second run copies nothing.
func TestCopySQLiteToPostgres(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	var progress bytes.Buffer
	st, err := Copy(ctx, src, dst, Options{Progress: &progress, BatchMessages: 7})
	must(t, err)
	if st.Users != 2 || st.Messages != 44 || st.Skipped != 0 {
		t.Errorf("stats %+v", st)
	}
	if !strings.Contains(progress.String(), "done: 2 users") {
		t.Errorf("progress: %q", progress.String())
	}
	compareStores(t, src, dst)
	st, err = Copy(ctx, src, dst, Options{})
	must(t, err)
	if st.Messages != 0 || st.Skipped != 44 {
		t.Errorf("second run: %+v", st)
	}
	compareStores(t, src, dst)
	// The copy is a working store: a new message gets the next UID and
	// modseq, a new mailbox a fresh UIDVALIDITY.
	a := account(t, dst, "alice")
	before, err := a.Status(ctx, "INBOX")
	must(t, err)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(300, "")}})
	must(t, err)
	after, err := a.Status(ctx, "INBOX")
	must(t, err)
	if res.UIDs[0] != before.UIDNext || after.HighestModSeq != before.HighestModSeq+1 {
		t.Errorf("append after copy: uid %d (uidnext was %d), modseq %d -> %d", res.UIDs[0], before.UIDNext, before.HighestModSeq, after.HighestModSeq)
	}
	q, err := a.Quota(ctx)
	must(t, err)
	if q.MessagesUsed != 42 {
		t.Errorf("usage after copy and one append: %+v", q)
	}
}

// TestCopyIntoBlobStore: with the target's bodies in a blob store
// (files here), the copy puts them there and everything reads back the
// same.
func TestCopyIntoBlobStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	blobs, err := blob.OpenFile(dir)
	must(t, err)
	src, dst := openPairWith(t, postgres.Options{Blobs: blobs})
	fillSource(t, src)
	_, err = Copy(ctx, src, dst, Options{BatchMessages: 5})
	must(t, err)
	compareStores(t, src, dst)
	n := 0
	must(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	}))
	if n < 40 {
		t.Errorf("%d files in the blob store after the copy", n)
	}
}

var errStop = errors.New("interrupted")

// interruptAfter returns an Options.afterBatch that stops the copy
// after n batches.
func interruptAfter(n int) func() error {
	done := 0
	return func() error {
		if done++; done == n {
			return errStop
		}
		return nil
	}
}

// TestCopyInterrupted: a copy stopped after some batches (as by a crash)
// and run again ends with the same result, nothing twice.
func TestCopyInterrupted(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	for _, stopAfter := range []int{1, 3, 5} {
		_, err := Copy(ctx, src, dst, Options{BatchMessages: 4, afterBatch: interruptAfter(stopAfter)})
		if !errors.Is(err, errStop) {
			t.Fatalf("interrupted copy: %v", err)
		}
	}
	st, err := Copy(ctx, src, dst, Options{BatchMessages: 4})
	must(t, err)
	if st.Messages+st.Skipped != 44 || st.Skipped == 0 {
		t.Errorf("rerun: %+v", st)
	}
	compareStores(t, src, dst)
}

// TestCopyConflict: a user of the same name made in the target by other
// means (another password hash) stops the copy; the target user's
// password and mail are left alone. A mailbox of the copied user with
// another UIDVALIDITY stops it too, before anything of the user is
// written (ErrTargetDiffers).
func TestCopyConflict(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	must(t, dst.CreateUser(ctx, "alice", "target-hash"))
	_, err := Copy(ctx, src, dst, Options{})
	if !errors.Is(err, postgres.ErrLoadConflict) {
		t.Fatalf("copy onto another alice: %v", err)
	}
	if h, _ := dst.PasswordHash(ctx, "alice"); h != "target-hash" {
		t.Errorf("the target user's hash became %q", h)
	}
	a := account(t, dst, "alice")
	boxes, err := a.Mailboxes(ctx)
	must(t, err)
	if len(boxes) != 1 || boxes[0].Name != "INBOX" {
		t.Errorf("the target user's mailboxes: %+v", boxes)
	}

	// bob's INBOX made in the target beforehand, with its own UIDVALIDITY.
	must(t, dst.DeleteUser(ctx, "alice"))
	sb := account(t, src, "bob")
	inbox, err := sb.Mailbox(ctx, "INBOX")
	must(t, err)
	hash, err := src.PasswordHash(ctx, "bob")
	must(t, err)
	must(t, dst.LoadUser(ctx, "bob", hash))
	_, _, err = dst.LoadMailbox(ctx, "bob", store.MailboxInfo{Name: "INBOX", UIDValidity: inbox.UIDValidity + 1})
	must(t, err)
	if _, err := Copy(ctx, src, dst, Options{}); !errors.Is(err, ErrTargetDiffers) {
		t.Fatalf("copy onto bob's other INBOX: %v", err)
	}
}

// BenchmarkCopy copies a store of one user with 10,000 messages of ~2 KiB
// (all in INBOX) into a new database per iteration and reports messages
// per second:
//
//	go test -run '^$' -bench Copy -benchtime 2x ./internal/storecopy/
func BenchmarkCopy(b *testing.B) {
	ctx := context.Background()
	src, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	if err := src.CreateUser(ctx, "bench", "hash"); err != nil {
		b.Fatal(err)
	}
	a, err := src.Account(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	const total = 10000
	for i := 0; i < total; i += 500 {
		var msgs []store.NewMessage
		for j := i; j < i+500; j++ {
			msgs = append(msgs, store.NewMessage{Body: msg(j%50, fmt.Sprintf(" #%d", j)), Flags: []string{`\Seen`}})
		}
		if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
			b.Fatal(err)
		}
	}
	a.Close()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst, err := postgres.Open(ctx, pgtest.NewDatabase(b), postgres.Options{Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := Copy(ctx, src, dst, Options{})
		if err != nil || st.Messages != total {
			b.Fatalf("copy: %+v %v", st, err)
		}
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// openPostgres opens a store on a fresh database.
func openPostgres(t *testing.T) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), pgtest.NewDatabase(t), postgres.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestCopyPostgresToPostgres: a postgres store is a source too, with its
// history (moving an installation to another database): a copy of the
// copy holds exactly what the first one holds, and a second run copies
// nothing.
func TestCopyPostgresToPostgres(t *testing.T) {
	ctx := context.Background()
	src, mid := openPair(t)
	fillSource(t, src)
	_, err := Copy(ctx, src, mid, Options{})
	must(t, err)
	// Changes made on the postgres store itself: new tombstones, flags,
	// a \Recent claim and a new mailbox after the first copy.
	a := account(t, mid, "alice")
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.Expunge(ctx, inbox.ID, []uint32{20, 21, 22}, false)
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{23}, store.FlagsAdd, []string{"$Moved"}, 0, false)
	must(t, err)
	_, err = a.ClaimRecent(ctx, inbox.ID, 40)
	must(t, err)
	must(t, a.CreateMailbox(ctx, "Later", ""))

	dst := openPostgres(t)
	st, err := Copy(ctx, mid, dst, Options{BatchMessages: 6})
	must(t, err)
	if st.Users != 2 || st.Messages != 41 {
		t.Errorf("stats %+v", st)
	}
	compareStores(t, mid, dst)
	st, err = Copy(ctx, mid, dst, Options{})
	must(t, err)
	if st.Messages != 0 || st.Skipped != 41 {
		t.Errorf("second run: %+v", st)
	}
	compareStores(t, mid, dst)
}

// TestCopySomeUsers: Options.Users copies those users only; a user the
// source lacks stops the copy before anything is written.
func TestCopySomeUsers(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	if _, err := Copy(ctx, src, dst, Options{Users: []string{"bob", "carol"}}); !errors.Is(err, store.ErrNoSuchUser) {
		t.Fatalf("copy of a user the source lacks: %v", err)
	}
	if users, err := dst.Users(ctx); err != nil || len(users) != 0 {
		t.Fatalf("target users after the refused copy: %v %v", users, err)
	}
	st, err := Copy(ctx, src, dst, Options{Users: []string{"bob"}})
	must(t, err)
	if st.Users != 1 || st.Messages != 3 {
		t.Errorf("stats %+v", st)
	}
	users, err := dst.Users(ctx)
	must(t, err)
	same(t, "target users", users, []string{"bob"})
	sa := account(t, src, "bob")
	da := account(t, dst, "bob")
	compareAccounts(t, sa, da)
}

// TestCopySourceChanged: a mailbox that changes while it is copied stops
// the copy with ErrSourceChanged before its history is recorded, and a
// rerun over the stale copy refuses.
func TestCopySourceChanged(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	b := account(t, src, "bob")
	inbox, err := b.Mailbox(ctx, "INBOX")
	must(t, err)
	changed := false
	_, err = Copy(ctx, src, dst, Options{Users: []string{"bob"}, BatchMessages: 1, afterBatch: func() error {
		if !changed {
			changed = true
			_, err := b.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsAdd, []string{`\Seen`}, 0, false)
			return err
		}
		return nil
	}})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("copy of a mailbox changed meanwhile: %v", err)
	}
	da := account(t, dst, "bob")
	st, err := da.Status(ctx, "INBOX")
	must(t, err)
	if st.HighestModSeq != 1 {
		t.Errorf("the target's INBOX took the changed history: HIGHESTMODSEQ %d", st.HighestModSeq)
	}
	// Run again without deleting the user in the target: it refuses
	// (ErrTargetDiffers) instead of keeping the stale message.
	if _, err := Copy(ctx, src, dst, Options{Users: []string{"bob"}}); !errors.Is(err, ErrTargetDiffers) {
		t.Fatalf("rerun over the stale message: %v", err)
	}
}

// TestCopyKeywordOnlyInMailboxList: a keyword that is in a mailbox's
// keyword list (FLAGS, PERMANENTFLAGS) though no copied message carries
// it (removed again, or its message expunged) stays in the copy's list:
// the target's list is read through the account's keyword spelling
// rows, which the copy writes for the list too.
func TestCopyKeywordOnlyInMailboxList(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	must(t, src.CreateUser(ctx, "carol", "hash-c"))
	a := account(t, src, "carol")
	_, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(1, "")}, {Body: msg(2, ""), Flags: []string{"$Junk"}}})
	must(t, err)
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsAdd, []string{"Work"}, 0, false)
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsRemove, []string{"Work"}, 0, false)
	must(t, err)
	_, err = a.Expunge(ctx, inbox.ID, []uint32{2}, false)
	must(t, err)
	ss, err := a.Status(ctx, "INBOX")
	must(t, err)
	if !slices.Contains(ss.Keywords, "Work") || !slices.Contains(ss.Keywords, "$Junk") {
		t.Fatalf("source keyword list %v (test premise)", ss.Keywords)
	}
	_, err = Copy(ctx, src, dst, Options{})
	must(t, err)
	da := account(t, dst, "carol")
	ds, err := da.Status(ctx, "INBOX")
	must(t, err)
	same(t, "INBOX keyword list", ss.Keywords, ds.Keywords)
}

// TestCopyChangeAfterMailboxCopied: a delivery into a mailbox whose own
// copy has finished, while a later mailbox of the same user is copied,
// stops the copy with ErrSourceChanged (the user's mailboxes are read
// again at its end) instead of leaving the target without the message.
func TestCopyChangeAfterMailboxCopied(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	a := account(t, src, "alice")
	n := 0
	// INBOX is copied first (one batch), then Archive/2026.
	_, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}, afterBatch: func() error {
		if n++; n == 2 {
			_, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(500, " (late)")}})
			return err
		}
		return nil
	}})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("copy with a delivery into a mailbox copied already: %v", err)
	}
}

// TestCopyRerunAfterSourceChangedBetweenRuns: a copy interrupted after
// its first batch, then the source changes messages the first run had
// copied (a flag, an expunge: the source was served between two runs);
// the same command run again refuses with ErrTargetDiffers instead of
// keeping the stale rows under the source's new HIGHESTMODSEQ.
func TestCopyRerunAfterSourceChangedBetweenRuns(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	_, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}, BatchMessages: 4, afterBatch: interruptAfter(1)})
	if !errors.Is(err, errStop) {
		t.Fatalf("interrupted copy: %v", err)
	}
	a := account(t, src, "alice")
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsAdd, []string{`\Flagged`}, 0, false)
	must(t, err)
	_, err = a.Expunge(ctx, inbox.ID, []uint32{2}, false)
	must(t, err)
	if _, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}, BatchMessages: 4}); !errors.Is(err, ErrTargetDiffers) {
		t.Fatalf("rerun after the source changed copied messages: %v", err)
	}
}

// TestCopyRerunAfterRename: a mailbox renamed in the source after a
// copy (same UIDVALIDITY, another name) makes a rerun refuse with
// ErrTargetDiffers: the target would otherwise hold it twice, under
// both names.
func TestCopyRerunAfterRename(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	_, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}})
	must(t, err)
	a := account(t, src, "alice")
	must(t, a.RenameMailbox(ctx, "Archive/2026", "Archive/2027"))
	if _, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}}); !errors.Is(err, ErrTargetDiffers) {
		t.Fatalf("rerun after a rename: %v", err)
	}
	da := account(t, dst, "alice")
	if _, err := da.Mailbox(ctx, "Archive/2027"); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Errorf("the refused rerun created the new name in the target: %v", err)
	}
}

// TestCopyRerunAfterOtherChanges: changes in the source between two
// runs that do not touch what the first run copied (a new message, a
// flag on a message not copied yet, a new mailbox) pass the rerun's
// check, and the rerun ends with an exact copy.
func TestCopyRerunAfterOtherChanges(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	_, err := Copy(ctx, src, dst, Options{BatchMessages: 4, afterBatch: interruptAfter(2)})
	if !errors.Is(err, errStop) {
		t.Fatalf("interrupted copy: %v", err)
	}
	a := account(t, src, "alice")
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{40}, store.FlagsAdd, []string{`\Flagged`}, 0, false)
	must(t, err)
	_, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(700, " (between runs)")}})
	must(t, err)
	must(t, a.CreateMailbox(ctx, "Later", ""))
	_, err = Copy(ctx, src, dst, Options{BatchMessages: 4})
	must(t, err)
	compareStores(t, src, dst)
}

// TestCopyRerunAfterCutover: the same command run again once the target
// is in use (a user moved earlier named again, a rerun after the
// switch) refuses with ErrTargetDiffers and leaves the target alone,
// instead of winding its UIDNEXT and HIGHESTMODSEQ back (the next
// APPEND would reuse a UID): after a new message there, and after a
// change that moves only HIGHESTMODSEQ on (another user's private
// \Seen).
func TestCopyRerunAfterCutover(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	_, err := Copy(ctx, src, dst, Options{})
	must(t, err)
	da := account(t, dst, "bob")
	_, err = da.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(600, " (after the move)")}})
	must(t, err)
	before, err := da.Status(ctx, "INBOX")
	must(t, err)
	if _, err := Copy(ctx, src, dst, Options{Users: []string{"bob"}}); !errors.Is(err, ErrTargetDiffers) {
		t.Fatalf("rerun over bob in use: %v", err)
	}
	after, err := da.Status(ctx, "INBOX")
	must(t, err)
	same(t, "bob's INBOX after the refused rerun", before, after)

	aa := account(t, dst, "alice")
	inbox, err := aa.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = aa.SetPrivateSeen(ctx, inbox.ID, "bob", []uint32{4}, true)
	must(t, err)
	before, err = aa.Status(ctx, "INBOX")
	must(t, err)
	if _, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}}); !errors.Is(err, ErrTargetDiffers) {
		t.Fatalf("rerun over alice in use: %v", err)
	}
	after, err = aa.Status(ctx, "INBOX")
	must(t, err)
	same(t, "alice's INBOX after the refused rerun", before, after)
}

// TestCopyPrivateSeen: other users' own \Seen on a shared mailbox
// (RFC 4314 private \Seen, private_seen in both backends) is copied with
// its states and modseqs, so bob does not see his read mail in alice's
// INBOX as unread after the move.
func TestCopyPrivateSeen(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	a := account(t, src, "alice")
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.SetPrivateSeen(ctx, inbox.ID, "bob", []uint32{1, 2, 3}, true)
	must(t, err)
	_, err = Copy(ctx, src, dst, Options{})
	must(t, err)
	da := account(t, dst, "alice")
	dinbox, err := da.Mailbox(ctx, "INBOX")
	must(t, err)
	sv, err := a.PrivateSeen(ctx, inbox.ID, "bob", nil, 0)
	must(t, err)
	dv, err := da.PrivateSeen(ctx, dinbox.ID, "bob", nil, 0)
	must(t, err)
	if len(sv) == 0 {
		t.Fatal("no private \\Seen in the source (test premise)")
	}
	same(t, "bob's private \\Seen on alice's INBOX", sv, dv)
}

// TestCopyInterruptedCheckClean: a copy into a blob store interrupted
// twice and run again leaves usage, body reference counts and the text
// queue exact (the target's Check finds nothing), bodies shared between
// users included.
func TestCopyInterruptedCheckClean(t *testing.T) {
	ctx := context.Background()
	blobs, err := blob.OpenFile(t.TempDir())
	must(t, err)
	src, dst := openPairWith(t, postgres.Options{Blobs: blobs})
	fillSource(t, src)
	// bob gets alice's bodies too: bodies shared between users.
	b, err := src.Account(ctx, "bob")
	must(t, err)
	_, err = b.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(1, "")}, {Body: msg(2, "")}})
	must(t, err)
	b.Close()
	for _, stopAfter := range []int{2, 5} {
		_, err := Copy(ctx, src, dst, Options{BatchMessages: 3, afterBatch: interruptAfter(stopAfter)})
		if !errors.Is(err, errStop) {
			t.Fatalf("interrupted copy: %v", err)
		}
	}
	_, err = Copy(ctx, src, dst, Options{BatchMessages: 3})
	must(t, err)
	compareStores(t, src, dst)
	problems, err := dst.Check(ctx, false)
	must(t, err)
	if len(problems) > 0 {
		t.Errorf("check after an interrupted copy: %q", problems)
	}
}

// TestCopyRerunAfterDeleteToNoselect: a mailbox copied with its
// messages, then deleted in the source while it has a child (it stays as
// a \Noselect parent, its messages gone, its id and UIDVALIDITY kept).
// The rerun refuses (ErrTargetDiffers): before, it only marked the
// target's copy \Noselect and kept its messages there, hidden and
// counted in the quota usage. (A review's finding, session 41.)
func TestCopyRerunAfterDeleteToNoselect(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	must(t, src.CreateUser(ctx, "dave", "hash-d"))
	a := account(t, src, "dave")
	must(t, a.CreateMailbox(ctx, "Work", ""))
	must(t, a.CreateMailbox(ctx, "Work/Sub", ""))
	_, err := a.Append(ctx, "Work", []store.NewMessage{{Body: msg(1, "")}, {Body: msg(2, "")}})
	must(t, err)
	_, err = Copy(ctx, src, dst, Options{})
	must(t, err)
	must(t, a.DeleteMailbox(ctx, "Work")) // a \Noselect parent now, its messages gone
	if _, err := Copy(ctx, src, dst, Options{}); !errors.Is(err, ErrTargetDiffers) {
		t.Fatalf("rerun over a mailbox deleted to \\Noselect in the source: %v", err)
	}
}

// TestCopyRerunMirrorsAccountState: a rerun after the source revoked a
// right, dropped a subscription, removed an annotation, deactivated its
// Sieve script and deleted another (none of which moves a modseq) ends
// with the source's state: before, the account state was only ever
// added to, so the revoked right kept granting access in the target and
// a vacation script switched off stayed on. (A review's finding,
// session 41.)
func TestCopyRerunMirrorsAccountState(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	a := account(t, src, "alice")
	must(t, a.PutSieveScript(ctx, "spare", []byte("keep;\r\n")))
	must(t, a.SetMetadata(ctx, "", []store.MetadataEntry{{Name: "/private/comment", Value: []byte("gone soon")}}))
	_, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}})
	must(t, err)

	_, err = a.SetACL(ctx, "Archive/2026", "bob", store.FlagsReplace, "")
	must(t, err)
	must(t, a.SetSubscribed(ctx, "Archive/2026", false))
	must(t, a.SetMetadata(ctx, "", []store.MetadataEntry{{Name: "/private/comment"}}))
	must(t, a.SetActiveSieveScript(ctx, ""))
	must(t, a.DeleteSieveScript(ctx, "spare"))
	_, err = Copy(ctx, src, dst, Options{Users: []string{"alice"}})
	must(t, err)
	da := account(t, dst, "alice")
	compareAccounts(t, a, da)
}
