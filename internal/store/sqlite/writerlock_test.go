//go:build unix

package sqlite

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// TestWriterLockNoStarvation: a server store whose writers commit without
// pause does not starve another store on the same files (tern deliver):
// the other's appends wait for a batch or two, not for SQLite's busy
// handler to hit a gap between the server's commits (seconds before
// writers.lock; past the 10 s busy timeout it failed).
func TestWriterLockNoStarvation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := openWith(t, dir, Options{Server: true})
	defer srv.Close()
	if err := srv.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	busy, err := srv.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	res, err := busy.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	other := openInline(t, dir, nil) // as tern deliver opens it
	defer other.Close()
	deliver, err := other.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer deliver.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flag := []string{"$busy" + string(rune('a'+w))}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				op := store.FlagsAdd
				if i%2 == 1 {
					op = store.FlagsRemove
				}
				if _, err := busy.StoreFlags(ctx, res.MailboxID, res.UIDs, op, flag, 0, false); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var waits []time.Duration
	for range 30 {
		start := time.Now()
		if _, err := deliver.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: y\r\n\r\ny\r\n")}}); err != nil {
			t.Errorf("append beside a busy server: %v", err)
		}
		waits = append(waits, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	slices.Sort(waits)
	commits := srv.users[busy.(*account).u.id].commits.Load()
	t.Logf("30 appends beside %d server commits: median %v, max %v", commits, waits[len(waits)/2], waits[len(waits)-1])
	if commits < 50 { // about 140 under -race, over 1,000 without
		t.Fatalf("the server committed %d batches: too few to have kept the log locked", commits)
	}
	// Without the lock the median was seconds; with it a few ms (1 s
	// leaves room for -race on a loaded machine).
	if waits[len(waits)-1] > time.Second {
		t.Fatalf("an append waited %v beside a busy server (median %v)", waits[len(waits)-1], waits[len(waits)/2])
	}
}
