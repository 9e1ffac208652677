//go:build unix

package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// TestCompactWaitsForWriterLock: Compact (VACUUM is a write) takes the
// user's writers.lock exclusively, as other processes' writes do: while
// another holder has it, Compact waits.
func TestCompactWaitsForWriterLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openInline(t, dir, nil)
	defer s.Close()
	a := newUser(t, s)
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: compactMsg(1)}}); err != nil {
		t.Fatal(err)
	}
	other, err := openWriterLock(filepath.Join(dir, "users", "1")) // its own open file: flock conflicts
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	release, err := other.hold()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Compact(ctx, "u")
		done <- err
	}()
	select {
	case err := <-done:
		release()
		t.Fatalf("Compact finished while another held the writer lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
