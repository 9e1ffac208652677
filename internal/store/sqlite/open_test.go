package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// holdWriteLock opens a second connection to user id's mail.db and takes
// its write lock (BEGIN IMMEDIATE), as another process writing would. The
// returned func releases it.
func holdWriteLock(t *testing.T, dir string, id int64) func() {
	t.Helper()
	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", itoa(id), "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tx, err := db.Begin() // _txlock=immediate: takes the write lock now
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			tx.Rollback()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// setUserVersion makes a user's mail.db look older, so opening it runs the
// migration (which needs the write lock).
func setUserVersion(t *testing.T, dir string, id int64, v int) {
	t.Helper()
	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", itoa(id), "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA user_version = ` + itoa(int64(v))); err != nil {
		t.Fatal(err)
	}
}

// TestSlowOpenDoesNotBlockOtherUsers: while one user's database takes long
// to open (a migration waiting for the write lock another process holds),
// other users' Account calls, and CreateUser, go through at once. Before
// per-user opening state, Store.Account held the store-wide mutex for the
// whole open, so every login waited for the slow one.
func TestSlowOpenDoesNotBlockOtherUsers(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s0 := openTest(t, dir, nil)
	for _, u := range []string{"slow", "fast"} {
		if err := s0.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	s0.Close()
	setUserVersion(t, dir, 1, 1) // "slow" has id 1
	s := openTest(t, dir, nil)   // a fresh store: nothing cached
	defer s.Close()
	release := holdWriteLock(t, dir, 1)

	slowDone := make(chan error, 2)
	for range 2 { // the opener and a second caller waiting for the same open
		go func() {
			a, err := s.Account(ctx, "slow")
			if err == nil {
				_, err = a.Mailbox(ctx, "INBOX")
				a.Close()
			}
			slowDone <- err
		}()
	}
	// Let the slow open start and block on the lock.
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-slowDone:
		t.Fatalf("slow open finished while its database was locked: %v", err)
	default:
	}

	start := time.Now()
	fast, err := s.Account(ctx, "fast")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Mailbox(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	fast.Close()
	if err := s.CreateUser(ctx, "new", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, "nobody"); !errors.Is(err, store.ErrNoSuchUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("other users waited %v for one user's slow open", d)
	}

	release()
	for range 2 {
		select {
		case err := <-slowDone:
			if err != nil {
				t.Fatalf("slow open after the lock was released: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("slow open did not finish after the lock was released")
		}
	}
	// Both callers shared one open database.
	s.mu.Lock()
	n := len(s.users)
	s.mu.Unlock()
	if n != 3 {
		t.Errorf("%d open user databases, want 3 (slow, fast, new)", n)
	}
}

// TestDeleteUserDuringOpen: a user deleted while an Account call is
// opening their database gets no Account and leaves no files behind, and
// deleting does not wait for the open.
func TestDeleteUserDuringOpen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s0 := openTest(t, dir, nil)
	if err := s0.CreateUser(ctx, "gone", "h"); err != nil {
		t.Fatal(err)
	}
	s0.Close()
	setUserVersion(t, dir, 1, 1)
	s := openTest(t, dir, nil)
	defer s.Close()
	release := holdWriteLock(t, dir, 1)
	done := make(chan error, 1)
	go func() {
		a, err := s.Account(ctx, "gone")
		if err == nil {
			a.Close()
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := s.DeleteUser(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("DeleteUser waited %v for an open", d)
	}
	release()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrNoSuchUser) {
			t.Fatalf("Account of a user deleted during the open: %v, want ErrNoSuchUser", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("open did not finish")
	}
	if _, err := os.Stat(filepath.Join(dir, "users", "1")); !os.IsNotExist(err) {
		t.Fatalf("files of the deleted user remain: %v", err)
	}
	if _, err := s.Account(ctx, "gone"); !errors.Is(err, store.ErrNoSuchUser) {
		t.Fatalf("Account after delete: %v", err)
	}
}

// TestDeleteUserWithOpenAccount: files of a user deleted while a session
// is open are removed when the last Account closes, and a lookup of the
// name no longer finds the user in between.
func TestDeleteUserWithOpenAccount(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, nil)
	defer s.Close()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Mailbox(ctx, "INBOX"); err != nil {
		t.Fatalf("open session after delete: %v", err)
	}
	if _, err := s.Account(ctx, "u"); !errors.Is(err, store.ErrNoSuchUser) {
		t.Fatalf("Account after delete: %v", err)
	}
	a.Close()
	if _, err := os.Stat(filepath.Join(dir, "users", "1")); !os.IsNotExist(err) {
		t.Fatalf("files of the deleted user remain after the last close: %v", err)
	}
	// A new user of the same name is a new id with an empty store.
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	b, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.(*account).u.id == 1 {
		t.Fatal("new user reused the deleted id")
	}
}

// TestCreateUserFailureLeavesNothing: when the new user's database cannot
// be opened (here: a file that is not a database planted where the next
// user's mail.db will be), CreateUser fails, the user does not exist, and
// no directory is left behind.
func TestCreateUserFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	defer s.Close()
	if err := s.CreateUser(ctx, "first", "h"); err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(dir, "users", "2")
	if err := os.MkdirAll(next, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(next, "mail.db"), []byte("this is not a database, it is a text file of some length"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, "second", "h"); err == nil {
		t.Fatal("CreateUser over a broken database succeeded")
	}
	if _, err := os.Stat(next); !os.IsNotExist(err) {
		t.Fatalf("directory of the failed user left behind: %v", err)
	}
	if _, err := s.Account(ctx, "second"); !errors.Is(err, store.ErrNoSuchUser) {
		t.Fatalf("failed user exists: %v", err)
	}
	if err := s.CreateUser(ctx, "second", "h"); err != nil {
		t.Fatalf("creating the user again: %v", err)
	}
}
