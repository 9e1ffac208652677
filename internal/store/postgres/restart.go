package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
)

// A database server that crashed, restarted or failed over may have lost
// commits: the relaxed ones (Options.RelaxedCommits) its WAL had not
// written, and with an asynchronous standby promoted, the standby's lag.
// It then gives their modseqs (and, after a failover, UIDs) again, which
// no comparison of modseqs can tell. So whatever this Store and its
// Notifier learned from the old server is forgotten (reset):
//
//   - when the listening connection breaks (listen.go), and again when it
//     listens once more (the server may have crashed again while nothing
//     listened);
//   - when a new pool connection finds another server start time than the
//     one seen before (checkServerStart): a host that died or a failover to
//     another machine breaks no connection at once (nothing answers, so
//     the listening connection waits for TCP's keepalive), while pool
//     connections are made anew; the check runs before a connection is
//     used, so a connection's first statement on a restarted server
//     waits for the reset (another connection made at once may not).
//     A pooler that keeps tern's connections open across the server's
//     restart (PgBouncer) leaves this to the listening connection; one
//     that spreads connections over several servers (Pgpool-II load
//     balancing) would reset at nearly every new connection, and is not
//     a setup for the primary's URL.
//
// A reset is paid for with reloads: each mailbox index in use loads again
// at its next use.

// reset forgets what the Store and its Notifier learned before now: the
// accounts' keyword caches and the writes that span it (breaks), the
// Sharers answers, the heads the checks saw (and a check under way takes
// nothing), the relaxed commits' signals not sent yet, whether the read
// replica may be asked (it must show a new mark: replica.rearm), and the
// Notifier's state (store.ResetNotifier). resetMu orders it with the
// hand-over of writes' deltas (finish): a delta is either handed over
// before the reset, which then drops it, or not at all.
func (s *Store) reset() {
	s.resetMu.Lock()
	defer s.resetMu.Unlock()
	s.breaks.Add(1)
	s.sharers.forget(store.Anyone)
	s.headsSeen.forgetHeads()
	s.signals.dropPending()
	if s.replica != nil {
		s.replica.rearm()
	}
	if n, ok := s.opts.Notifier.(store.ResetNotifier); ok {
		n.StoreReset()
	}
}

const serverStartSQL = `SELECT pg_postmaster_start_time()`

// checkServerStart reads conn's server start time and resets the Store
// if it is not the one seen before (pgxpool's AfterConnect; the first
// connection only records it).
func (s *Store) checkServerStart(ctx context.Context, conn *pgx.Conn) error {
	var t time.Time
	if err := conn.QueryRow(ctx, serverStartSQL).Scan(&t); err != nil {
		return fmt.Errorf("read the server's start time: %w", err)
	}
	us := t.UnixMicro()
	old := s.serverStart.Load()
	if old == us || !s.serverStart.CompareAndSwap(old, us) || old == 0 {
		return nil
	}
	s.log.Warn("postgres store: the database server restarted or failed over; what this node cached from it is dropped")
	s.reset()
	return nil
}
