package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Checkpoints of a user's write-ahead log run beside the writes instead of
// inside them. SQLite's own automatic checkpoint runs in the connection
// whose commit crossed 1,000 log pages, before that commit returns: under
// tern's write lock, so every write of the user waited for it (copying the
// pages into mail.db and fsyncing it). With a STORE issued every few
// milliseconds next to three goroutines appending, the slowest STORE took
// 1.7 s that way and 0.16 s without; the median went from 1.3 to 0.3 ms.
//
// Instead, every checkpointEvery commits start a PASSIVE checkpoint on a
// goroutine of its own (at most one per user at a time): it copies what
// it can without waiting for readers or writers. SQLite starts the log
// over only when a write begins while every frame is copied, which
// writes that keep coming rarely allow; so once the log holds
// walRestartFrames frames, a commit checkpoints under the write lock, as
// SQLite would have, but with little left to copy. SQLite's automatic
// checkpoint stays as a backstop (walAutoCheckpoint pages).
const (
	checkpointEvery   = 64
	walRestartFrames  = 2048
	walAutoCheckpoint = 16384
)

// walAutoCheckpointPragma is the DSN parameter for mail.db connections.
var walAutoCheckpointPragma = "&_pragma=wal_autocheckpoint(" + strconv.Itoa(walAutoCheckpoint) + ")"

// afterCommit counts a commit and starts a background checkpoint, or runs
// one when the log should start over; called with wmu held.
func (u *userDB) afterCommit() {
	if u.walFrames.Load() >= walRestartFrames {
		if done, _ := u.checkpoint(); done {
			u.walFrames.Store(0) // the next write starts the log over
		}
		return
	}
	if u.sinceCheckpoint.Add(1) >= checkpointEvery && u.checkpointing.CompareAndSwap(false, true) {
		u.sinceCheckpoint.Store(0)
		u.checkpoints.Add(1)
		go func() {
			defer u.checkpoints.Done()
			defer u.checkpointing.Store(false)
			if _, frames := u.checkpoint(); frames >= 0 {
				u.walFrames.Store(int64(frames))
			}
		}()
	}
}

// checkpoint runs a PASSIVE checkpoint and returns whether it copied
// every frame of the log and the log's length in frames (-1 if unknown).
// A failure (a full disk) is logged and retried later.
func (u *userDB) checkpoint() (done bool, frames int) {
	done, frames, err := u.walCheckpoint(context.Background())
	if err != nil && u.log != nil {
		u.log.Warn("checkpoint of the write-ahead log", "user", u.name, "err", err)
	}
	return done, frames
}

// walCheckpoint runs PRAGMA wal_checkpoint(PASSIVE) and reports whether
// every frame of the log is now in mail.db, and the log's frames.
func (u *userDB) walCheckpoint(ctx context.Context) (bool, int, error) {
	var busy, logFrames, copied int
	if err := u.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied); err != nil {
		return false, -1, fmt.Errorf("wal checkpoint: %w", err)
	}
	return busy == 0 && logFrames >= 0 && copied == logFrames, logFrames, nil
}

// closeConns closes u's connections once no checkpoint is running.
func (u *userDB) closeConns() error {
	u.checkpoints.Wait()
	err := errors.Join(u.db.Close(), u.closeScan())
	if u.writers != nil {
		u.writers.close()
	}
	return err
}
