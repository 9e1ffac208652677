package sqlite

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestAppendFailedCommit: when COMMIT reports an error, Append removes its
// body files only if the rows that reference them certainly did not
// commit. A commit that took effect although it reported an error must
// not leave messages without their bodies.
func TestAppendFailedCommit(t *testing.T) {
	ctx := context.Background()
	s, dir, a := openUser(t)
	u := s.users[1]
	msg := func(subject string) []store.NewMessage {
		return []store.NewMessage{{Body: []byte("Subject: " + subject + "\r\n\r\nbody\r\n")}}
	}

	// The commit took effect, but its outcome was lost (as when the
	// error comes after the log reached the disk).
	lost := errors.New("simulated: commit outcome lost")
	u.testCommit = func(tx *sqlTx) error {
		if err := tx.Commit(); err != nil {
			return err
		}
		return lost
	}
	if _, err := a.Append(ctx, "INBOX", msg("committed")); !errors.Is(err, lost) {
		t.Fatalf("Append: %v, want the commit error", err)
	}
	u.testCommit = nil
	if n := len(blobFiles(t, dir, 1)); n != 1 {
		t.Errorf("%d body files after a commit that took effect, want 1", n)
	}
	var uids []uint32
	err := a.Fetch(ctx, inboxID(t, a), []uint32{1, 2, 3}, store.Want(0), func(m *store.Message) error {
		uids = append(uids, m.UID)
		return nil
	})
	if err != nil || len(uids) != 1 {
		t.Fatalf("messages after a commit that took effect: %v %v", uids, err)
	}
	b, err := a.OpenBody(ctx, inboxID(t, a), uids[0])
	if err != nil {
		t.Fatalf("body of a committed message: %v", err)
	}
	raw, _ := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	b.Close()
	if !strings.Contains(string(raw), "committed") {
		t.Errorf("body %q", raw)
	}

	// The same for writes that share one group commit.
	u.testCommit = func(tx *sqlTx) error {
		if err := tx.Commit(); err != nil {
			return err
		}
		return lost
	}
	u.wmu.Lock()
	errs := make(chan error, 2)
	for _, subj := range []string{"group 1", "group 2"} {
		go func() {
			_, err := a.Append(ctx, "INBOX", msg(subj))
			errs <- err
		}()
	}
	queued(t, u, 2)
	u.wmu.Unlock()
	for range 2 {
		if err := <-errs; !errors.Is(err, lost) {
			t.Fatalf("Append in a group commit: %v, want the commit error", err)
		}
	}
	if u.commits.Load() == 0 {
		t.Fatal("no commit counted")
	}
	u.testCommit = nil
	if n := len(blobFiles(t, dir, 1)); n != 3 {
		t.Errorf("%d body files after a group commit that took effect, want 3", n)
	}

	// The commit failed and was rolled back: the files go.
	u.testCommit = func(tx *sqlTx) error {
		tx.Rollback()
		return errors.New("simulated: commit failed")
	}
	if _, err := a.Append(ctx, "INBOX", msg("rolled back")); err == nil {
		t.Fatal("Append succeeded")
	}
	u.testCommit = nil
	if n := len(blobFiles(t, dir, 1)); n != 3 {
		t.Errorf("%d body files after a rolled back commit, want 3", n)
	}

	// A failure before the commit: the files go.
	if _, err := a.Append(ctx, "NoSuchMailbox", msg("no mailbox")); err == nil {
		t.Fatal("Append to a missing mailbox succeeded")
	}
	if n := len(blobFiles(t, dir, 1)); n != 3 {
		t.Errorf("%d body files after a failed write, want 3", n)
	}

	problems, err := s.Check(ctx, false)
	if err != nil || len(problems) > 0 {
		t.Errorf("check: %v %q", err, problems)
	}
}

func inboxID(t *testing.T, a store.Account) int64 {
	t.Helper()
	st, err := a.Status(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return st.ID
}

// TestNewUserDirSynced: opening a new user's mail makes the directory
// entries it created durable (users/<id> in users/, blobs and mail.db in
// users/<id>), and a failure to sync them fails the open instead of
// being ignored.
func TestNewUserDirSynced(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var mu sync.Mutex
	synced := map[string]bool{}
	fail := ""
	testSyncDir = func(d string) error {
		mu.Lock()
		defer mu.Unlock()
		synced[d] = true
		if d == fail {
			return errors.New("simulated: sync failed")
		}
		return nil
	}
	defer func() { testSyncDir = nil }()
	s := openTest(t, dir, nil)
	defer s.Close()
	if !synced[dir] {
		t.Errorf("data directory not synced after creating users/")
	}
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	for _, d := range []string{filepath.Join(dir, "users"), filepath.Join(dir, "users", "1")} {
		if !synced[d] {
			t.Errorf("%s not synced after creating a user's directory", d)
		}
	}

	mu.Lock()
	fail = filepath.Join(dir, "users", "2")
	mu.Unlock()
	if err := s.CreateUser(ctx, "v", "h"); err == nil {
		t.Errorf("CreateUser succeeded although the user's directory could not be synced")
	}
	mu.Lock()
	fail = ""
	mu.Unlock()
	if err := s.CreateUser(ctx, "v", "h"); err != nil {
		t.Fatalf("CreateUser once syncing works again: %v", err)
	}
}
