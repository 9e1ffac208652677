package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// TestBackgroundCheckpoint: commits start checkpoints of the log on their
// own (SQLite's automatic one is pushed back to walAutoCheckpoint pages),
// and the log starts over once it holds walRestartFrames frames, so it
// does not grow with the number of writes.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	s, dir, a := openUser(t)
	var auto int
	u := s.users[1]
	if err := u.db.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != walAutoCheckpoint {
		t.Fatalf("wal_autocheckpoint = %d (%v), want %d", auto, err, walAutoCheckpoint)
	}
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nbody\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	const writes = 3000
	for i := range writes {
		op := store.FlagsAdd
		if i%2 == 1 {
			op = store.FlagsRemove
		}
		if _, err := a.StoreFlags(ctx, res.MailboxID, res.UIDs, op, []string{`\Seen`}, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	u.checkpoints.Wait()
	// Every STORE dirties a few pages: without checkpoints the log would
	// hold about 9,000 frames.
	db, err := sqldb.Open(filepath.Join(dir, "users", "1", "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var busy, logFrames, copied int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied); err != nil {
		t.Fatal(err)
	}
	// The log starts over once a checkpoint has seen walRestartFrames;
	// what a slow background checkpoint lets pile up meanwhile is bounded
	// generously (a loaded machine under -race), still far below 9,000.
	if max := 2 * walRestartFrames; logFrames > max {
		t.Fatalf("the log holds %d frames after %d writes, want at most %d", logFrames, writes, max)
	}
	if got := fmt.Sprint(u.checkpointing.Load()); got != "false" {
		t.Fatalf("a checkpoint still marked running after Wait")
	}
}
