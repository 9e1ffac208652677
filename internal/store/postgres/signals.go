package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Batched change signals (listen.go has the format and the receiving
// end). A transaction that commits relaxed (store.fsync = "optimized":
// flag changes and expunges) does not NOTIFY itself: after it commits,
// its changes join this node's pending signals (signal), and one
// goroutine sends them, merged per user, in one statement at most every
// signalInterval (sendSignals). PostgreSQL wakes every listening
// connection for each transaction that notified, the node's own
// included, and takes a database-wide lock at such a commit; a NOTIFY
// in every write cost PostgreSQL about 50 µs of CPU per write for the
// one listener of a single node (docs/PERFORMANCE.md, thirty-fourth
// pass), and each node more per listener.
//
// What it changes for those writes: their signal leaves up to
// signalInterval after the commit (plus a round trip), and a node that
// dies in that time takes its pending signals with it; then a session
// on another node that has the mailbox selected sees the change at the
// mailbox's next signal, at that node's next check of the watched
// mailboxes' heads (heads.go, every two seconds), or when it selects it
// again. The write itself
// may be lost in such a crash only if PostgreSQL crashes too (a relaxed
// commit). Durable writes (new mail, copies, moves, mailbox changes, and
// every write under store.fsync = "always") keep their signal inside
// the transaction, delivered exactly when they commit. A failed send is
// tried again; Close sends what is pending, and a write that commits
// after that sends its own.

// signalInterval is the least time between two sends of a node's
// signals: under load, the writes of one interval share one statement
// and one wake-up of each listener; a write when the node has sent
// nothing for that long is signalled at once.
const signalInterval = 5 * time.Millisecond

// signalRetry is the pause before a failed send is tried again.
const signalRetry = time.Second

// signalTimeout bounds one send.
const signalTimeout = 10 * time.Second

// maxSignalPayload is the largest payload one notification carries
// (PostgreSQL refuses more than 8000 bytes); a user's changes that need
// more go in several.
const maxSignalPayload = 7000

// signalSQL sends the payloads $2 on channel $1, one notification each,
// in one statement (and implicit transaction).
const signalSQL = `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`

// signaler holds a node's pending change signals.
type signaler struct {
	mu      sync.Mutex
	pending pendingSignals
	stopped bool          // the sender has stopped: writes send their own
	kick    chan struct{} // capacity 1: something is pending
	stop    context.CancelFunc
	done    chan struct{}
	// hook, if set (tests only), runs before each send; an error fails it.
	hook func() error
}

// pendingSignals are the changes not yet sent, by user name.
type pendingSignals map[string]*pendingSignal

// pendingSignal is what one user's committed writes changed: each
// mailbox's highest modseq, and whether the mailbox list changed.
type pendingSignal struct {
	changed map[int64]uint64
	list    bool
}

// add merges a change into p.
func (p pendingSignals) add(user string, changed map[int64]uint64, list bool) {
	ps := p[user]
	if ps == nil {
		ps = &pendingSignal{changed: make(map[int64]uint64, len(changed))}
		p[user] = ps
	}
	for id, ms := range changed {
		ps.changed[id] = max(ps.changed[id], ms)
	}
	ps.list = ps.list || list
}

// startSignals starts the goroutine that sends the signals.
func (s *Store) startSignals() {
	ctx, stop := context.WithCancel(context.Background())
	s.signals.pending = pendingSignals{}
	s.signals.kick = make(chan struct{}, 1)
	s.signals.stop, s.signals.done = stop, make(chan struct{})
	go s.sendSignals(ctx)
}

// stopSignals sends what is pending and stops the sender; from then on
// signal refuses, and each write sends its own signal.
func (s *Store) stopSignals() {
	s.signals.mu.Lock()
	s.signals.stopped = true
	s.signals.mu.Unlock()
	s.signals.stop()
	<-s.signals.done
}

// signal queues, for the other nodes, that user's committed write
// changed the mailboxes in changed (id -> modseq) and, with list, the
// mailbox list. It returns false when the sender has stopped (Close):
// the caller sends the signal itself.
func (s *Store) signal(user string, changed map[int64]uint64, list bool) bool {
	if len(changed) == 0 && !list {
		return true
	}
	g := &s.signals
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return false
	}
	g.pending.add(user, changed, list)
	g.mu.Unlock()
	g.wake()
	return true
}

// dropPending forgets the signals not sent yet (a reset: their relaxed
// commits may be lost, and a signal of a lost modseq would make other
// nodes believe they have seen the change that reuses it). Other nodes
// catch up with the rest at their next check or read.
func (g *signaler) dropPending() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending != nil {
		g.pending = pendingSignals{}
	}
}

// wake makes the sender look at the pending signals.
func (g *signaler) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// sendSignals sends the pending signals until ctx ends, at most once
// per signalInterval (a failed send again after signalRetry), then sends
// what is left.
func (s *Store) sendSignals(ctx context.Context) {
	defer close(s.signals.done)
	var last time.Time
	for {
		select {
		case <-s.signals.kick:
		case <-ctx.Done():
			s.flushSignals()
			return
		}
		pause(ctx, time.Until(last.Add(signalInterval)))
		last = time.Now()
		if !s.flushSignals() && ctx.Err() == nil {
			pause(ctx, signalRetry)
			s.signals.wake()
		}
	}
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// flushSignals sends the pending signals in one statement; on failure
// they are pending again (merged with what came meanwhile) and it
// returns false.
func (s *Store) flushSignals() bool {
	g := &s.signals
	g.mu.Lock()
	taken := g.pending
	g.pending = pendingSignals{}
	g.mu.Unlock()
	if len(taken) == 0 {
		return true
	}
	var payloads []string
	for user, p := range taken {
		payloads = append(payloads, s.notifyPayloads(user, p.changed, p.list)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
	defer cancel()
	var err error
	if g.hook != nil {
		err = g.hook()
	}
	if err == nil {
		_, err = s.pool.Exec(ctx, signalSQL, notifyChannel, payloads)
	}
	if err == nil {
		return true
	}
	s.log.Warn("postgres store: change signals not sent", "users", len(taken), "err", err)
	g.mu.Lock()
	for user, p := range taken {
		g.pending.add(user, p.changed, p.list)
	}
	g.mu.Unlock()
	return false
}

// sendSignalsOn sends payloads on conn, for a write that committed after
// the sender stopped.
func (s *Store) sendSignalsOn(ctx context.Context, conn *pgx.Conn, payloads []string) {
	if _, err := conn.Exec(ctx, signalSQL, notifyChannel, payloads); err != nil {
		s.log.Warn("postgres store: change signal not sent", "err", err)
	}
}

// notifyPayloads encodes a user's change signal: one payload, or
// several when the mailboxes do not fit in maxSignalPayload bytes. The
// user name is length-prefixed (it may hold spaces).
func (s *Store) notifyPayloads(user string, changed map[int64]uint64, list bool) []string {
	const listMark = " L"
	head := s.node + " " + strconv.Itoa(len(user)) + ":" + user
	ids := make([]int64, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []string
	var b strings.Builder
	b.WriteString(head)
	for _, id := range ids {
		f := " " + strconv.FormatInt(id, 10) + ":" + strconv.FormatUint(changed[id], 10)
		if b.Len()+len(f)+len(listMark) > maxSignalPayload && b.Len() > len(head) {
			out = append(out, b.String())
			b.Reset()
			b.WriteString(head)
		}
		b.WriteString(f)
	}
	if list {
		b.WriteString(listMark)
	}
	return append(out, b.String())
}
