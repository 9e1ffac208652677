//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// A data directory's server.lock says who has the store open: every
// tern serve holds it shared for its life (several may, as the other
// processes' write protocol allows: writerlock.go), and a command that
// must have the store to itself (tern check: its counts and its repairs
// are wrong beside writes it does not see) holds it exclusively. Neither
// waits: the one that comes second fails at once, saying why.

// openServerLock takes dir's server.lock shared (server) or exclusively
// (exclusive); nil when neither is asked for.
func openServerLock(dir string, server, exclusive bool) (*os.File, error) {
	if !server && !exclusive {
		return nil, nil
	}
	f, err := os.OpenFile(filepath.Join(dir, "server.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open server lock: %w", err)
	}
	how, busy := syscall.LOCK_SH, ErrStoreExclusive
	if exclusive {
		how, busy = syscall.LOCK_EX, ErrServerRunning
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, busy
		}
		return nil, fmt.Errorf("take server lock: %w", err)
	}
	return f, nil
}
