//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Writers of one user's mail.db in other processes than tern serve (tern
// deliver, tern import, admin commands) announce each write transaction
// on a lock file, users/<id>/writers.lock, and tern serve yields to them.
//
// Without it SQLite alone arbitrates, and its busy handler polls: a
// process whose BEGIN IMMEDIATE finds the log locked sleeps up to 100 ms
// and tries again. A server that commits without pause (thousands of
// flag changes a second) leaves gaps of microseconds, which a poll every
// 100 ms rarely hits: beside three goroutines toggling a keyword, a
// second store's APPEND every 50 ms waited 2.3 s (median) and up to 6.7 s,
// and past the 10 s busy timeout it fails.
//
// The others hold the lock exclusively (flock, blocking) around each
// write transaction. The server only probes it before each batch
// (LOCK_SH|LOCK_NB, released at once): while another process holds it,
// the server starts no batch and probes again every millisecond, so that
// process's BEGIN IMMEDIATE gets in on its busy handler's first retries.
// The server never blocks in the kernel: a stopped process holding the
// lock costs it an error after writerWait, as SQLite's busy timeout would.

// writerWait is how long the server waits for another process's write
// transaction before it fails a batch (the busy timeout, busy_timeout in
// dsn).
const writerWait = 10 * time.Second

// writerProbe is how often a server waiting for another process looks
// again.
const writerProbe = time.Millisecond

// writerLock is a user's writers.lock, open for the life of the userDB.
type writerLock struct {
	f *os.File
}

func openWriterLock(dir string) (*writerLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, "writers.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open writer lock: %w", err)
	}
	return &writerLock{f: f}, nil
}

func (l *writerLock) close() error { return l.f.Close() }

// hold takes the lock exclusively (another process than the server,
// around one write transaction) and returns its release.
func (l *writerLock) hold() (func(), error) {
	fd := int(l.f.Fd())
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX)
		if err == nil {
			return func() { syscall.Flock(fd, syscall.LOCK_UN) }, nil
		}
		if !errors.Is(err, syscall.EINTR) {
			return nil, fmt.Errorf("take writer lock: %w", err)
		}
	}
}

// yield waits, probing, until no other process holds the lock (the
// server, before a batch).
func (l *writerLock) yield() error {
	fd := int(l.f.Fd())
	var deadline time.Time // set at the first probe that finds the lock held
	for {
		err := syscall.Flock(fd, syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			syscall.Flock(fd, syscall.LOCK_UN)
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("probe writer lock: %w", err)
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(writerWait)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("another process held the user's writer lock for over %v", writerWait)
		}
		time.Sleep(writerProbe)
	}
}
