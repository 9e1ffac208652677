package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/s3test"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
)

// pgStoreState describes everything a synchronised client relies on in a
// postgres store, one line per user, mailbox and message: mailbox
// identities and counters, each message's UID, MODSEQ, flags and the
// SHA-256 of its body (read through the store, so a body missing from
// the blob store fails the test).
func pgStoreState(t *testing.T, url string, blobs blob.Store) string {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.Options{Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users, err := st.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, u := range users {
		hash, err := st.PasswordHash(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "user %s %s\n", u, hash)
		acct, err := st.Account(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		boxes, err := acct.Mailboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range boxes {
			s, err := acct.Status(ctx, mb.Name)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, " mailbox %s uidvalidity=%d uidnext=%d highestmodseq=%d messages=%d\n",
				mb.Name, mb.UIDValidity, s.UIDNext, s.HighestModSeq, s.Messages)
			var uids []uint32
			for u := uint32(1); u < s.UIDNext; u++ {
				uids = append(uids, u)
			}
			err = acct.Fetch(ctx, mb.ID, uids, store.WantFlags, func(m *store.Message) error {
				body, err := readStoredBody(ctx, acct, mb.ID, m.UID)
				if err != nil {
					return err
				}
				fmt.Fprintf(&b, "  uid=%d modseq=%d flags=%v body=%x\n", m.UID, m.ModSeq, m.Flags, sha256.Sum256(body))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		acct.Close()
	}
	return b.String()
}

func readStoredBody(ctx context.Context, acct store.Account, mailboxID int64, uid uint32) ([]byte, error) {
	r, err := acct.OpenBody(ctx, mailboxID, uid)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data := make([]byte, r.Size())
	// A ReaderAt may say EOF with the last byte (the S3 blob store does).
	if n, err := r.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(data)) {
		return nil, err
	}
	return data, nil
}

// TestBackupRestorePostgres: tern backup of a postgres store with bodies
// in a file blob store, then tern restore into a new database and a new
// blob store: users, mailboxes, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
// UIDs, MODSEQs, flags and bodies are as they were at the backup; mail
// delivered after it is not there; a damaged dump, a non-empty target
// and a backup without its blob store are refused.
func TestBackupRestorePostgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	blobDir := t.TempDir()
	blobURL := "file:" + blobDir
	for _, u := range []string{"alice", "bob"} {
		if r := runT(t, "pw-"+u+"\n", "user", "add", u, "--store", url, "--blob-store", blobURL); r.code != 0 {
			t.Fatalf("user add: %+v", r)
		}
	}
	for i := range 5 {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\n%s", i, strings.Repeat(fmt.Sprintf("line %d of a body\r\n", i), 100*(i+1)))
		for _, u := range []string{"alice", "bob"} {
			if r := runT(t, msg, "deliver", "--user", u, "--store", url, "--blob-store", blobURL); r.code != 0 {
				t.Fatalf("deliver: %+v", r)
			}
		}
	}
	// Flags, an expunge and a new mailbox, so modseqs and UIDs have gaps.
	blobs, err := blob.OpenFile(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	func() {
		st, err := postgres.Open(ctx, url, postgres.Options{Blobs: blobs})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		acct, err := st.Account(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		defer acct.Close()
		s, err := acct.Status(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := acct.StoreFlags(ctx, s.ID, []uint32{2, 4}, store.FlagsAdd, []string{`\Seen`, "$Label1"}, 0, false); err != nil {
			t.Fatal(err)
		}
		if _, err := acct.Expunge(ctx, s.ID, []uint32{3}, false); err != nil {
			t.Fatal(err)
		}
		if err := acct.CreateMailbox(ctx, "Kept", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := acct.Copy(ctx, s.ID, []uint32{1, 5}, "Kept"); err != nil {
			t.Fatal(err)
		}
	}()
	before := pgStoreState(t, url, blobs)

	dest := filepath.Join(t.TempDir(), "backup")
	r := runT(t, "", "backup", dest, "--store", url, "--blob-store", blobURL)
	if r.code != 0 || !strings.Contains(r.stdout, "2 users, 11 messages, 5 bodies") {
		t.Fatalf("backup: %+v", r)
	}
	// Mail after the backup is not in it.
	if r := runT(t, "Subject: later\r\n\r\nafter the backup\r\n", "deliver", "--user", "alice", "--store", url, "--blob-store", blobURL); r.code != 0 {
		t.Fatalf("deliver: %+v", r)
	}
	if pgStoreState(t, url, blobs) == before {
		t.Fatal("the delivery after the backup changed nothing")
	}
	// A backup needs an empty directory.
	if r := runT(t, "", "backup", dest, "--store", url, "--blob-store", blobURL); r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("backup into a used directory: %+v", r)
	}

	// It is no data directory backup, and an embedded store's backup is
	// not this one.
	if r := runT(t, "", "restore", dest, "--data", t.TempDir()); r.code == 0 || !strings.Contains(r.stderr, "backup of a postgres store") {
		t.Fatalf("restore into a data directory: %+v", r)
	}
	sqliteBackup, sqliteData := filepath.Join(t.TempDir(), "sq"), t.TempDir()
	if r := runT(t, "pw\n", "user", "add", "dave", "--data", sqliteData); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if r := runT(t, "", "backup", sqliteBackup, "--data", sqliteData); r.code != 0 {
		t.Fatalf("sqlite backup: %+v", r)
	}
	if r := runT(t, "", "restore", sqliteBackup, "--store", pgtest.NewDatabase(t)); r.code == 0 || !strings.Contains(r.stderr, "no postgres store backup") {
		t.Fatalf("restore of an embedded store's backup into postgres: %+v", r)
	}

	url2 := pgtest.NewDatabase(t)
	blobDir2 := t.TempDir()
	// Without the blob store the bodies have nowhere to go.
	if r := runT(t, "", "restore", dest, "--store", url2); r.code == 0 || !strings.Contains(r.stderr, "--blob-store") {
		t.Fatalf("restore without a blob store: %+v", r)
	}
	r = runT(t, "", "restore", dest, "--store", url2, "--blob-store", "file:"+blobDir2)
	if r.code != 0 || !strings.Contains(r.stdout, "store is consistent") {
		t.Fatalf("restore: %+v", r)
	}
	blobs2, err := blob.OpenFile(blobDir2)
	if err != nil {
		t.Fatal(err)
	}
	if after := pgStoreState(t, url2, blobs2); after != before {
		t.Fatalf("restored store differs\nbefore the backup:\n%s\nrestored:\n%s", before, after)
	}
	// A second restore into the now used database is refused.
	if r := runT(t, "", "restore", dest, "--store", url2, "--blob-store", "file:"+blobDir2); r.code == 0 || !strings.Contains(r.stderr, "already holds a tern store") {
		t.Fatalf("restore into a used database: %+v", r)
	}
	// A damaged dump is refused before anything is written.
	dump := filepath.Join(dest, "tern.pgdump")
	data, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(dump, data, 0o600); err != nil {
		t.Fatal(err)
	}
	url3 := pgtest.NewDatabase(t)
	if r := runT(t, "", "restore", dest, "--store", url3, "--blob-store", "file:"+t.TempDir()); r.code == 0 || !strings.Contains(r.stderr, "damaged") {
		t.Fatalf("restore of a damaged dump: %+v", r)
	}
}

// TestBackupRestorePostgresBodiesInDB: with bodies in the database the
// backup is the dump alone.
func TestBackupRestorePostgresBodiesInDB(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if r := runT(t, "pw\n", "user", "add", "carol", "--store", url); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if r := runT(t, "Subject: hi\r\n\r\nin the database\r\n", "deliver", "--user", "carol", "--store", url); r.code != 0 {
		t.Fatalf("deliver: %+v", r)
	}
	before := pgStoreState(t, url, nil)
	dest := filepath.Join(t.TempDir(), "backup")
	// pgxpool's own parameters in the URL (which pg_dump does not know).
	if r := runT(t, "", "backup", dest, "--store", url+"&pool_max_conns=3"); r.code != 0 || !strings.Contains(r.stdout, "1 users, 1 messages, 0 bodies") {
		t.Fatalf("backup: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dest, "blobs")); !os.IsNotExist(err) {
		t.Fatalf("blobs directory in a backup of a store without a blob store: %v", err)
	}
	url2 := pgtest.NewDatabase(t)
	if r := runT(t, "", "restore", dest, "--store", url2+"&pool_max_conns=3"); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	if after := pgStoreState(t, url2, nil); after != before {
		t.Fatalf("restored store differs\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestBackupSincePostgres: tern backup --since PREV takes the bodies PREV
// holds from it and fetches only the others; the result restores like a
// full backup after PREV is deleted, and a damaged file of PREV is
// fetched again, not reused.
func TestBackupSincePostgres(t *testing.T) {
	dir := t.TempDir()
	blobs, err := blob.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	testBackupSince(t, "file:"+dir, blobs)
}

// TestBackupSincePostgresS3: the same with an s3:// blob store on a
// private SeaweedFS server.
func TestBackupSincePostgresS3(t *testing.T) {
	srv := s3test.Shared(t)
	cfg := s3test.NewBucket(t)
	for _, kv := range s3test.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	blobs, err := blob.OpenS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	testBackupSince(t, srv.URL(cfg.Bucket), blobs)
}

func testBackupSince(t *testing.T, blobURL string, blobs blob.Store) {
	ctx := context.Background()
	url, root := pgtest.NewDatabase(t), t.TempDir()
	tern := func(stdin string, args ...string) result {
		t.Helper()
		r := runT(t, stdin, append(args, "--store", url, "--blob-store", blobURL)...)
		if r.code != 0 {
			t.Fatalf("tern %s: %+v", strings.Join(args, " "), r)
		}
		return r
	}
	msg := func(i int) string {
		return fmt.Sprintf("Subject: message %d\r\n\r\n%s", i, strings.Repeat(fmt.Sprintf("line %d of a body\r\n", i), 50*(i+1)))
	}
	for _, u := range []string{"alice", "bob"} {
		tern("pw-"+u+"\n", "user", "add", u)
	}
	for i := range 4 { // 4 bodies, each used by both users
		for _, u := range []string{"alice", "bob"} {
			tern(msg(i), "deliver", "--user", u)
		}
	}
	prev := filepath.Join(root, "prev")
	tern("", "backup", prev)
	prevM, err := postgres.ReadDumpManifest(prev)
	if err != nil {
		t.Fatal(err)
	}
	if len(prevM.Bodies) != 4 || prevM.Blobs != 4 {
		t.Fatalf("first backup: %d bodies listed, %d counted, want 4", len(prevM.Bodies), prevM.Blobs)
	}

	// 3 new bodies; flags; body 1 expunged by both users (unused now, but
	// kept for the grace period, so the snapshot still lists it).
	for i := 4; i < 7; i++ {
		tern(msg(i), "deliver", "--user", "alice")
	}
	changeMail(t, url, blobs, "alice", func(acct store.Account, inbox int64) {
		if _, err := acct.StoreFlags(ctx, inbox, []uint32{3, 5}, store.FlagsAdd, []string{`\Seen`, "$Label1"}, 0, false); err != nil {
			t.Fatal(err)
		}
		if _, err := acct.Expunge(ctx, inbox, []uint32{1, 2}, false); err != nil {
			t.Fatal(err)
		}
	})
	changeMail(t, url, blobs, "bob", func(acct store.Account, inbox int64) {
		if _, err := acct.Expunge(ctx, inbox, []uint32{2}, false); err != nil {
			t.Fatal(err)
		}
	})
	before := pgStoreState(t, url, blobs)

	// The bodies PREV holds are taken out of the blob store while the
	// second backup runs: fetching one of them would fail it.
	restore := hideBlobs(t, blobs, prevM.Bodies)
	dest := filepath.Join(root, "dest")
	r := runT(t, "", "backup", dest, "--since", prev, "--store", url, "--blob-store", blobURL)
	restore()
	if r.code != 0 || !strings.Contains(r.stdout, "bodies: 4 reused from "+prev) || !strings.Contains(r.stdout, "3 fetched from the blob store") {
		t.Fatalf("backup --since: %+v", r)
	}
	destM, err := postgres.ReadDumpManifest(dest)
	if err != nil {
		t.Fatal(err)
	}
	if destM.Blobs != 7 || destM.ReusedBlobs != 4 || len(destM.Bodies) != 7 {
		t.Fatalf("backup --since: %d bodies (%d listed), %d reused; want 7, 4", destM.Blobs, len(destM.Bodies), destM.ReusedBlobs)
	}
	var reusedBytes int64
	for key, size := range prevM.Bodies {
		reusedBytes += size
		a, errA := os.Lstat(filepath.Join(prev, "blobs", key))
		b, errB := os.Lstat(filepath.Join(dest, "blobs", key))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Fatalf("body %s is no hard link of PREV's (%v, %v)", key, errA, errB)
		}
	}
	if destM.ReusedBytes != reusedBytes {
		t.Fatalf("reused %d bytes, PREV holds %d", destM.ReusedBytes, reusedBytes)
	}

	// DEST stands on its own.
	if err := os.RemoveAll(prev); err != nil {
		t.Fatal(err)
	}
	if after := restoreInto(t, dest); after != before {
		t.Fatalf("restored store differs\nbefore the backup:\n%s\nrestored:\n%s", before, after)
	}

	// A damaged body file (same size) in the earlier backup is fetched.
	var damaged string
	for key := range prevM.Bodies {
		damaged = key
		break
	}
	path := filepath.Join(dest, "blobs", damaged)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	third := filepath.Join(root, "third")
	r = tern("", "backup", third, "--since", dest)
	if !strings.Contains(r.stdout, "body "+damaged+" of "+dest+" not reused") || !strings.Contains(r.stdout, "bodies: 6 reused from "+dest) || !strings.Contains(r.stdout, "1 fetched from the blob store") {
		t.Fatalf("backup --since a damaged backup: %+v", r)
	}
	if after := restoreInto(t, third); after != before {
		t.Fatalf("restored store differs\nbefore the backup:\n%s\nrestored:\n%s", before, after)
	}

	// A backup by an older tern lists no bodies: nothing is reused.
	thirdM, err := postgres.ReadDumpManifest(third)
	if err != nil {
		t.Fatal(err)
	}
	thirdM.Bodies = nil
	old, err := json.Marshal(thirdM)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(third, "tern-backup.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	r = tern("", "backup", filepath.Join(root, "fourth"), "--since", third)
	if !strings.Contains(r.stdout, "lists no bodies (made by an older tern)") || !strings.Contains(r.stdout, "bodies: 0 reused from "+third) {
		t.Fatalf("backup --since a backup without a list of bodies: %+v", r)
	}

	// PREV must be a complete postgres store backup.
	for _, bad := range []struct{ prev, want string }{
		{prev, "no complete backup"},
		{t.TempDir(), "no complete backup"},
	} {
		r := runT(t, "", "backup", filepath.Join(root, "bad"), "--since", bad.prev, "--store", url, "--blob-store", blobURL)
		if r.code == 0 || !strings.Contains(r.stderr, "--since: "+bad.want) {
			t.Fatalf("backup --since %s: %+v", bad.prev, r)
		}
	}
}

// changeMail calls fn with user's account and the id of their INBOX.
func changeMail(t *testing.T, url string, blobs blob.Store, user string, fn func(acct store.Account, inbox int64)) {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.Options{Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, err := st.Account(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	s, err := acct.Status(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	fn(acct, s.ID)
}

// hideBlobs deletes the objects keys names from blobs; the function it
// returns puts them back.
func hideBlobs(t *testing.T, blobs blob.Store, keys map[string]int64) (putBack func()) {
	t.Helper()
	ctx := context.Background()
	saved := map[string][]byte{}
	for key := range keys {
		obj, err := blobs.Open(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(io.NewSectionReader(obj, 0, obj.Size()))
		obj.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := blobs.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		saved[key] = data
	}
	return func() {
		for key, data := range saved {
			if err := blobs.Put(ctx, key, data); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// restoreInto restores the backup in src into a new database and file
// blob store and returns the restored store's state.
func restoreInto(t *testing.T, src string) string {
	t.Helper()
	url, dir := pgtest.NewDatabase(t), t.TempDir()
	if r := runT(t, "", "restore", src, "--store", url, "--blob-store", "file:"+dir); r.code != 0 || !strings.Contains(r.stdout, "store is consistent") {
		t.Fatalf("restore of %s: %+v", src, r)
	}
	blobs, err := blob.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	return pgStoreState(t, url, blobs)
}
