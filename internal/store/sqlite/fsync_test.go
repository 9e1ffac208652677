package sqlite

import (
	"context"
	"os"
	"strings"
	"testing"

	"sync/atomic"
	"time"

	"github.com/ncruces/go-sqlite3/vfs"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/vfshook"
	"github.com/tern-imap/tern/internal/store/sqlite/walvfs"
)

// TestFsyncModes: under FsyncAlways every commit syncs the log before it
// returns; under FsyncOptimized commits only write it (walvfs), and the
// commits that add mail sync the log (syncLog) before they return, while
// those that only change flags, expunge, claim \Recent or index text do
// not (a copy or move is durable: its UIDs go to the client). The log's
// syncs are watched below walvfs, where only those that reach the disk
// arrive; a syncLog counts when it follows the commit.
func TestFsyncModes(t *testing.T) {
	ctx := context.Background()
	const lazy, durable = 1, 2
	logSyncs := watchCommitSyncs(t)
	for _, tc := range []struct {
		mode                             FsyncMode
		append, flags, copyMove, expunge int
	}{
		{FsyncAlways, durable, durable, durable, durable},
		{FsyncOptimized, durable, lazy, durable, lazy},
	} {
		s := openWith(t, t.TempDir(), Options{Fsync: tc.mode})
		if err := s.CreateUser(ctx, "u", "h"); err != nil {
			t.Fatal(err)
		}
		a, err := s.Account(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		var level, synced int // level: the log's syncs inside the COMMIT
		committed := false
		testSyncLog = func() {
			if committed {
				synced++
			}
		}
		t.Cleanup(func() { testSyncLog = nil })
		s.users[1].testCommit = func(tx *sqlTx) error {
			before := logSyncs.Load()
			err := tx.Commit()
			level = int(logSyncs.Load() - before)
			committed, synced = true, 0
			return err
		}
		check := func(what string, want int, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("mode %d: %s: %v", tc.mode, what, err)
			}
			got := lazy
			if level > 0 || synced > 0 { // the commit synced the log, or it was synced after
				got = durable
			}
			if got != want {
				t.Errorf("mode %d: %s committed durably = %v (log syncs in the commit %d, after %d), want %v", tc.mode, what, got == durable, level, synced, want == durable)
			}
			committed = false
		}
		res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nbody\r\n")}})
		check("APPEND", tc.append, err)
		n, _, err := a.(*account).indexPending(ctx, 10, 0)
		check("full-text indexing", tc.flags, err)
		if n != 1 {
			t.Fatalf("mode %d: indexed %d messages, want 1", tc.mode, n)
		}
		if err := a.CreateMailbox(ctx, "Archive", ""); err != nil {
			t.Fatal(err)
		}
		_, err = a.Copy(ctx, res.MailboxID, res.UIDs, "Archive")
		check("COPY", tc.copyMove, err)
		cr, err := a.Move(ctx, res.MailboxID, res.UIDs, "Archive")
		check("MOVE", tc.copyMove, err)
		back, err := a.Move(ctx, cr.DestMailboxID, cr.DestUIDs, "INBOX")
		check("MOVE back", tc.copyMove, err)
		_, err = a.StoreFlags(ctx, res.MailboxID, back.DestUIDs, store.FlagsAdd, []string{`\Deleted`}, 0, false)
		check("STORE", tc.flags, err)
		_, err = a.Expunge(ctx, res.MailboxID, nil, true)
		check("EXPUNGE", tc.expunge, err)
		_, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: y\r\n\r\nbody\r\n")}})
		check("APPEND after a lazy commit", tc.append, err)
		a.Close()
		s.Close()
	}
}

// TestOptimizedExpungeSyncsLogBeforeRemovingBodies: under FsyncOptimized
// an EXPUNGE commits without waiting for the disk, so the body files it
// frees may only be removed once the log is fsynced; otherwise a power
// failure could undo the expunge and bring back messages without bodies.
// Under FsyncAlways the commit was already durable.
func TestOptimizedExpungeSyncsLogBeforeRemovingBodies(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mode      FsyncMode
		wantSyncs int
	}{{FsyncAlways, 0}, {FsyncOptimized, 1}} {
		dir := t.TempDir()
		s := openWith(t, dir, Options{Fsync: tc.mode, InlineBodyMax: 64})
		if err := s.CreateUser(ctx, "u", "h"); err != nil {
			t.Fatal(err)
		}
		a, err := s.Account(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		body := []byte("Subject: big\r\n\r\n" + strings.Repeat("a body kept in its own file\r\n", 20))
		res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: body}})
		if err != nil {
			t.Fatal(err)
		}
		files := blobFiles(t, dir, 1)
		if len(files) != 1 {
			t.Fatalf("mode %d: %d body files after APPEND, want 1", tc.mode, len(files))
		}
		syncs := 0
		testSyncLog = func() {
			if _, err := os.Stat(files[0]); err != nil {
				t.Errorf("mode %d: body file gone before the log was synced: %v", tc.mode, err)
			}
			syncs++
		}
		if _, err := a.StoreFlags(ctx, res.MailboxID, res.UIDs, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Expunge(ctx, res.MailboxID, nil, true); err != nil {
			t.Fatal(err)
		}
		testSyncLog = nil
		if syncs != tc.wantSyncs {
			t.Errorf("mode %d: log synced %d times for the expunge, want %d", tc.mode, syncs, tc.wantSyncs)
		}
		if left := blobFiles(t, dir, 1); len(left) != 0 {
			t.Errorf("mode %d: body files left after EXPUNGE: %v", tc.mode, left)
		}
		a.Close()
		s.Close()
	}
}

// TestLazyWriteDoesNotWaitForSync: under FsyncOptimized a durable batch
// syncs the log after it has released the write lock and handed on the
// lead, so a STORE that arrives while an APPEND's fsync runs commits
// without waiting for it, and the APPEND still returns only after its
// sync.
func TestLazyWriteDoesNotWaitForSync(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, t.TempDir(), Options{Fsync: FsyncOptimized})
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nbody\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	inSync, release := make(chan struct{}), make(chan struct{})
	var blocked atomic.Bool
	testSyncLog = func() {
		if blocked.CompareAndSwap(false, true) { // the first sync waits
			close(inSync)
			<-release
		}
	}
	t.Cleanup(func() { testSyncLog = nil })
	appended := make(chan error, 1)
	go func() {
		_, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: y\r\n\r\nbody\r\n")}})
		appended <- err
	}()
	select {
	case <-inSync:
	case <-time.After(10 * time.Second):
		t.Fatal("the APPEND did not sync the log")
	}
	stored := make(chan error, 1)
	go func() {
		_, err := a.StoreFlags(ctx, res.MailboxID, res.UIDs, store.FlagsAdd, []string{`\Seen`}, 0, false)
		stored <- err
	}()
	select {
	case err := <-stored:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the STORE waited for the APPEND's log sync")
	}
	select {
	case err := <-appended:
		t.Fatalf("the APPEND returned (%v) before its log sync ended", err)
	default:
	}
	close(release)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
}

// watchCommitSyncs makes the stores opened after it (until the test ends)
// count the commit syncs of their logs that reach the disk (walvfs passes
// a commit's sync on only when commits are synced; checkpoints' syncs,
// SYNC_FULL, are not counted).
func watchCommitSyncs(t *testing.T) *atomic.Int64 {
	t.Helper()
	var commits atomic.Int64
	vfs.Register(walvfs.Name, walvfs.Wrap(vfshook.Wrap(vfs.Find(""), &vfshook.Hooks{
		Files: vfs.OPEN_WAL,
		Sync: func(flags vfs.SyncFlag) error {
			if flags&vfs.SYNC_FULL == vfs.SYNC_NORMAL {
				commits.Add(1)
			}
			return nil
		},
	})))
	t.Cleanup(func() { vfs.Register(walvfs.Name, walvfs.Wrap(vfs.Find(""))) })
	return &commits
}
