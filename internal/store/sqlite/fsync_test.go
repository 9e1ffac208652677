package sqlite

import (
	"context"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestFsyncModes: under FsyncAlways every commit is made with
// synchronous=FULL (the log is fsynced before the commit returns); under
// FsyncOptimized, commits that add mail keep FULL and those that only
// change flags, expunge or claim \Recent use NORMAL. The level is read
// inside each transaction just before its COMMIT.
func TestFsyncModes(t *testing.T) {
	ctx := context.Background()
	const normal, full = 1, 2
	for _, tc := range []struct {
		mode                   FsyncMode
		append, flags, expunge int
	}{
		{FsyncAlways, full, full, full},
		{FsyncOptimized, full, normal, normal},
	} {
		s := openWith(t, t.TempDir(), Options{Fsync: tc.mode})
		if err := s.CreateUser(ctx, "u", "h"); err != nil {
			t.Fatal(err)
		}
		a, err := s.Account(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		var level int
		s.users[1].testCommit = func(tx *sqlTx) error {
			if err := tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
				return err
			}
			return tx.Commit()
		}
		check := func(what string, want int, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("mode %d: %s: %v", tc.mode, what, err)
			}
			if level != want {
				t.Errorf("mode %d: %s committed with synchronous=%d, want %d", tc.mode, what, level, want)
			}
		}
		res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nbody\r\n")}})
		check("APPEND", tc.append, err)
		_, err = a.StoreFlags(ctx, res.MailboxID, res.UIDs, store.FlagsAdd, []string{`\Deleted`}, 0, false)
		check("STORE", tc.flags, err)
		_, err = a.Expunge(ctx, res.MailboxID, nil, true)
		check("EXPUNGE", tc.expunge, err)
		_, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: y\r\n\r\nbody\r\n")}})
		check("APPEND after a lazy commit", tc.append, err)
		a.Close()
		s.Close()
	}
}
