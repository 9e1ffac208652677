package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tern-imap/tern/internal/store"
)

// Reads from a streaming replica (Options.ReadURL; docs/SCALING.md, "Read
// replicas").
//
// A replica replays the primary's WAL some time after the primary
// commits, so it may answer with an older state. Only rows that never
// change once written are read there: a message's body and its content
// fields (envelope, body structure, header, threading ids). A message's
// UID in its mailbox never names another message, so whatever the
// replica finds for (mailbox, UID) is that message's content. What the
// replica does not have yet (a message delivered a moment ago) is read
// from the primary, as is everything when the replica fails: a replica
// read is an optimisation, never a source of "no such message".
// Whether a message still exists does change (an expunge), so the
// replica's answer for a mailbox counts only if its copy of the mailbox
// is at least as recent as the newest change this Store knows of
// (modseqFloor: its own commits, and other processes' as NOTIFY brings
// them): an expunge made through this Store is never undone by a
// lagging replica. Flags, modseqs, UIDs of a mailbox, counters and
// everything a write reads stay on the primary.

// replicaWant is what a Fetch may want to be answered by the replica:
// fields of the content, which never changes once written.
const replicaWant = store.WantEnvelope | store.WantBody | store.WantBodyStructure | store.WantHeader | store.WantThreading

// replica is the pool of Options.ReadURL.
type replica struct {
	pool    *pgxpool.Pool
	primary *pgxpool.Pool
	log     *slog.Logger
	floor   modseqFloor
	// The replica is used only once it shows the mark (a row of
	// replica_marks) the Store wrote on the primary when it opened, or
	// when it last reset (rearm): the floor knows nothing of what was
	// committed before (by this node before a restart, or by others), and
	// a replica that shows the mark has replayed every commit before it.
	// After a failover to a standby that lacked some commits, the new
	// primary gives their UIDs again; a replica left on the old primary's
	// timeline (it had received more than the standby promoted, so it
	// cannot follow the new primary) still has the lost messages under
	// those UIDs, and it never shows a mark written after the failover.
	//
	// shownEpoch is the epoch whose mark the replica showed (-1: none);
	// rearm moves epoch on. Checks run at most once a second
	// (lastCheck), one at a time (checkMu, which also guards marks, the
	// marks written since the last rearm, any of which will do, newest
	// last; markEpoch, the epoch they were written for; and markMade,
	// when the newest was).
	shownEpoch atomic.Int64
	epoch      atomic.Int64
	lastCheck  atomic.Int64
	checkMu    sync.Mutex
	marks      [][]byte
	markEpoch  int64
	markMade   time.Time
	// downUntil (Unix ns): after a failure the replica is left alone for
	// replicaPause, so a host that does not answer costs one connect
	// timeout, not one per read.
	downUntil atomic.Int64
	// lastWarn is when (Unix ns) the last failure was logged: at most
	// one a minute, however many reads fail.
	lastWarn atomic.Int64
	// Reads the replica answered, and reads it left to the primary (the
	// row not there yet, or a failure); for tests and operators' logs.
	answered, passed atomic.Int64
}

// replicaPause is how long the replica is not asked after a failure;
// replicaConnectTimeout bounds a connection attempt unless the URL sets
// connect_timeout.
const (
	replicaPause          = 10 * time.Second
	replicaConnectTimeout = 2 * time.Second
)

// openReplica opens the replica's pool, of the primary's size unless url
// sets pool_max_conns, and writes the Store's first mark on the primary.
// It connects lazily: a replica that is down at the start is tried again
// later, the primary answering meanwhile.
func openReplica(ctx context.Context, primary *pgxpool.Pool, url string, maxConns int32, tracer pgx.QueryTracer, log *slog.Logger) (*replica, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = maxConns
	}
	if !strings.Contains(url, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = replicaConnectTimeout
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	r := &replica{primary: primary, log: log, markMade: time.Now()}
	r.shownEpoch.Store(-1)
	mark, err := writeMark(ctx, primary)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	r.marks = [][]byte{mark}
	if r.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	return r, nil
}

// markKeep is how long a mark stays in replica_marks; a Store whose
// replica has not shown its marks for markRenew writes another one (and
// warns), so a replica that replays a mark's row only after its
// deletion is not shut out for good. At most maxMarks are asked for.
const (
	markKeep  = "7 days"
	markRenew = time.Hour
	maxMarks  = 24
)

// writeMark writes a new random mark on the primary (and deletes the
// marks older than markKeep) and returns it.
func writeMark(ctx context.Context, primary *pgxpool.Pool) ([]byte, error) {
	mark := make([]byte, 16)
	rand.Read(mark)
	_, err := primary.Exec(ctx, `WITH old AS (DELETE FROM replica_marks WHERE made < now() - interval '`+markKeep+`')
		INSERT INTO replica_marks(token) VALUES($1)`, mark)
	if err != nil {
		return nil, fmt.Errorf("write the replica mark: %w", err)
	}
	return mark, nil
}

// rearm makes the replica wait for a new mark before it is asked again
// (Store.reset: the database may have failed over).
func (r *replica) rearm() { r.epoch.Add(1) }

// usable reports whether the replica may be asked now: not paused after
// a failure, and showing the Store's latest mark.
func (r *replica) usable(ctx context.Context) (bool, error) {
	now := time.Now().UnixNano()
	if now < r.downUntil.Load() {
		return false, nil
	}
	if r.shownEpoch.Load() == r.epoch.Load() {
		return true, nil
	}
	if now-r.lastCheck.Load() < int64(time.Second) || !r.checkMu.TryLock() {
		return false, nil
	}
	defer r.checkMu.Unlock()
	r.lastCheck.Store(now)
	epoch := r.epoch.Load() // under checkMu: no older check stores after this one
	if r.shownEpoch.Load() == epoch {
		return true, nil
	}
	if err := r.renewMark(ctx, epoch); err != nil {
		// The primary may be failing over still: the next check tries
		// again, the primary answering meanwhile.
		return false, nil
	}
	var shown bool
	if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM replica_marks WHERE token = ANY($1))`, r.marks).Scan(&shown); err != nil {
		return false, err
	}
	if !shown {
		return false, nil
	}
	// A rearm since the check began moved epoch on: this store then
	// matches no epoch usable compares, and the next check waits for a
	// newer mark.
	r.shownEpoch.Store(epoch)
	return r.epoch.Load() == epoch, nil
}

// renewMark writes a new mark when the marks the replica is asked for
// belong to an older epoch (they are forgotten), or the newest has not
// shown for markRenew (it is added; logged). It runs under checkMu.
func (r *replica) renewMark(ctx context.Context, epoch int64) error {
	old := r.markEpoch != epoch
	if !old && time.Since(r.markMade) <= markRenew {
		return nil
	}
	mark, err := writeMark(ctx, r.primary)
	if err != nil {
		return err
	}
	if old {
		r.marks = r.marks[:0]
	} else {
		r.log.Warn("postgres store: the read replica has not replayed this node's mark for an hour (it lags or is down, or it follows another primary); its reads go to the primary", "renew", markRenew)
	}
	r.marks = append(r.marks, mark)
	if len(r.marks) > maxMarks {
		r.marks = r.marks[1:]
	}
	r.markEpoch, r.markMade = epoch, time.Now()
	return nil
}

// fromReplica runs read on the replica's pool and reports whether the
// replica answered it: false without a replica, when read found that the
// replica does not have everything yet (found false), or when it failed
// (logged); the caller then reads from the primary.
func (s *Store) fromReplica(ctx context.Context, read func(q querier) (found bool, err error)) bool {
	r := s.replica
	if r == nil {
		return false
	}
	ok, err := r.usable(ctx)
	found := false
	if ok {
		found, err = read(r.pool)
	}
	if err == nil && found {
		r.answered.Add(1)
		return true
	}
	r.passed.Add(1)
	if err != nil && ctx.Err() == nil {
		now := time.Now().UnixNano()
		r.downUntil.Store(now + int64(replicaPause))
		if last := r.lastWarn.Load(); now-last > int64(time.Minute) && r.lastWarn.CompareAndSwap(last, now) {
			s.log.Warn("postgres store: read from the replica failed; reading from the primary", "err", err, "pause", replicaPause)
		}
	}
	return false
}

// raiseFloor records committed changes (mailbox id -> modseq) in the
// replica's floor; without a replica it does nothing.
func (s *Store) raiseFloor(changed map[int64]uint64) {
	if s.replica != nil && len(changed) > 0 {
		s.replica.floor.raise(changed)
	}
}

// modseqFloor is, per mailbox, the highest modseq this Store knows to
// be committed. One entry per mailbox changed while the Store is open
// (about 40 bytes each), kept only when there is a replica.
type modseqFloor struct {
	mu sync.Mutex
	m  map[int64]uint64
}

// raise records committed changes (mailbox id -> its modseq).
func (f *modseqFloor) raise(changed map[int64]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[int64]uint64, len(changed))
	}
	for id, ms := range changed {
		f.m[id] = max(f.m[id], ms)
	}
}

// reached reports whether the replica's copy of mailbox id, at
// highestmodseq ms, has every change the Store knows of.
func (f *modseqFloor) reached(id int64, ms int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ms >= 0 && uint64(ms) >= f.m[id]
}

// fetchFromReplica reads one batch of a Fetch (want within replicaWant;
// q is Fetch's query, which starts "SELECT m.uid") on the replica,
// appending to out; false when the replica did not find every one of the
// batch's n UIDs, or its copy of the mailbox is older than the floor (out
// is then as it was). The mailbox's HIGHESTMODSEQ comes in the same
// statement, so from the same snapshot as the rows.
func (a *account) fetchFromReplica(ctx context.Context, q string, args []any, want store.Want, n int64, out []*store.Message) ([]*store.Message, bool) {
	var got []*store.Message
	ok := a.s.fromReplica(ctx, func(r querier) (bool, error) {
		rows, err := r.Query(ctx, "SELECT mb.highestmodseq, "+strings.TrimPrefix(q, "SELECT "), args...)
		if err != nil {
			return false, err
		}
		var ms int64 = -1
		got, err = scanFetchRowsAfter(rows, &ms, want, true, out)
		return int64(len(got)-len(out)) == n && a.s.replica.floor.reached(args[0].(int64), ms), err
	})
	if !ok {
		clear(out[len(out):cap(out)]) // what the failed read appended
		return out, false
	}
	return got, true
}

// count is how many UIDs r covers.
func (r uidRanges) count() int64 {
	var n int64
	for i := range r.lo {
		n += r.hi[i] - r.lo[i] + 1
	}
	return n
}
