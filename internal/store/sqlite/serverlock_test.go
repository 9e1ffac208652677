//go:build unix

package sqlite

import (
	"context"
	"errors"
	"testing"
)

// TestServerLock: servers share a data directory, an exclusive opener
// (tern check) has it alone, and whoever comes second fails at once.
func TestServerLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s1, err := Open(ctx, dir, Options{Server: true})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, dir, Options{Server: true})
	if err != nil {
		t.Fatalf("second server: %v", err)
	}
	plain, err := Open(ctx, dir, Options{}) // tern user, deliver, import
	if err != nil {
		t.Fatalf("a command beside the servers: %v", err)
	}
	plain.Close()
	if _, err := Open(ctx, dir, Options{Exclusive: true}); !errors.Is(err, ErrServerRunning) {
		t.Fatalf("exclusive beside servers: %v", err)
	}
	s1.Close()
	if _, err := Open(ctx, dir, Options{Exclusive: true}); !errors.Is(err, ErrServerRunning) {
		t.Fatalf("exclusive beside one server: %v", err)
	}
	s2.Close()
	ex, err := Open(ctx, dir, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive with no server: %v", err)
	}
	if _, err := Open(ctx, dir, Options{Server: true}); !errors.Is(err, ErrStoreExclusive) {
		t.Fatalf("server during an exclusive command: %v", err)
	}
	ex.Close()
	s3, err := Open(ctx, dir, Options{Server: true})
	if err != nil {
		t.Fatalf("server after the exclusive command: %v", err)
	}
	s3.Close()
}
