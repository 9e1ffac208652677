package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sending change signals (listen.go has the format and the receiving
// end). A write transaction does not NOTIFY itself: after it commits,
// its changes join this node's pending signals (signal), and one
// goroutine sends them, merged per user, in one statement at most every
// signalInterval (sendSignals). PostgreSQL wakes every listening
// connection for each transaction that notified, the node's own
// included, and takes a database-wide lock at such a commit; a NOTIFY
// in every write cost PostgreSQL about 50 µs of CPU per write for the
// one listener of a single node (BenchmarkStoreOneListening, docs/
// PERFORMANCE.md, thirty-fourth pass), and each node more per listener.
//
// What it changes: a signal leaves up to signalInterval after the
// commit (plus a round trip), not with it, and a node that dies in that
// time takes its pending signals with it. Signals only make sessions ask
// what changed (the mailbox index is validated by modseq), so a lost one
// costs freshness, never correctness, as one lost while a listening
// connection reconnects always did: the other nodes' sessions see the
// change at their next command, or at the mailbox's next signal, and
// an IDLE session when it next leaves IDLE. Close sends what is
// pending.

// signalInterval is the least time between two sends of a node's
// signals: under load, the writes of one interval share one statement
// and one wake-up of each listener; a write when the node has sent
// nothing for that long is signalled at once.
const signalInterval = 5 * time.Millisecond

// signalTimeout bounds one send.
const signalTimeout = 10 * time.Second

// maxSignalPayload is the largest payload one notification carries
// (PostgreSQL refuses more than 8000 bytes); a user's pending changes
// that need more go in several.
const maxSignalPayload = 7000

// signalSQL sends the payloads $2 on channel $1, one notification each,
// in one statement (and implicit transaction).
const signalSQL = `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`

// signaler holds a node's pending change signals.
type signaler struct {
	mu      sync.Mutex
	pending map[string]*pendingSignal // by user name
	kick    chan struct{}             // capacity 1: something is pending
	stop    context.CancelFunc
	done    chan struct{}
}

// pendingSignal is what one user's committed writes changed since the
// last send: each mailbox's highest modseq, and whether the mailbox list
// changed.
type pendingSignal struct {
	changed map[int64]uint64
	list    bool
}

// startSignals starts the goroutine that sends the signals.
func (s *Store) startSignals() {
	ctx, stop := context.WithCancel(context.Background())
	s.signals.kick = make(chan struct{}, 1)
	s.signals.stop, s.signals.done = stop, make(chan struct{})
	go s.sendSignals(ctx)
}

// stopSignals sends what is pending and stops the sender.
func (s *Store) stopSignals() {
	s.signals.stop()
	<-s.signals.done
}

// signal queues, for the other nodes, that user's committed write
// changed the mailboxes in changed (id -> modseq) and, with list, the
// mailbox list.
func (s *Store) signal(user string, changed map[int64]uint64, list bool) {
	if len(changed) == 0 && !list {
		return
	}
	g := &s.signals
	g.mu.Lock()
	p := g.pending[user]
	if p == nil {
		if g.pending == nil {
			g.pending = map[string]*pendingSignal{}
		}
		p = &pendingSignal{changed: make(map[int64]uint64, len(changed))}
		g.pending[user] = p
	}
	for id, ms := range changed {
		p.changed[id] = max(p.changed[id], ms)
	}
	p.list = p.list || list
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// sendSignals sends the pending signals until ctx ends, at most once
// per signalInterval, then sends what is left.
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
		if wait := time.Until(last.Add(signalInterval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		last = time.Now()
		s.flushSignals()
	}
}

// flushSignals sends the pending signals in one statement.
func (s *Store) flushSignals() {
	payloads := s.takeSignals()
	if len(payloads) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
	defer cancel()
	if _, err := s.pool.Exec(ctx, signalSQL, notifyChannel, payloads); err != nil {
		s.log.Warn("postgres store: change signals not sent; other nodes see the changes at their sessions' next command", "signals", len(payloads), "err", err)
	}
}

// takeSignals empties the pending signals into payloads.
func (s *Store) takeSignals() []string {
	g := &s.signals
	g.mu.Lock()
	pending := g.pending
	g.pending = nil
	g.mu.Unlock()
	var out []string
	for user, p := range pending {
		out = append(out, s.notifyPayloads(user, p.changed, p.list)...)
	}
	return out
}

// notifyPayloads encodes a user's change signal: one payload, or
// several when the mailboxes do not fit in maxSignalPayload bytes. The
// user name is length-prefixed (it may hold spaces).
func (s *Store) notifyPayloads(user string, changed map[int64]uint64, list bool) []string {
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
		if b.Len()+len(f) > maxSignalPayload && b.Len() > len(head) {
			out = append(out, b.String())
			b.Reset()
			b.WriteString(head)
		}
		b.WriteString(f)
	}
	if list {
		b.WriteString(" L")
	}
	return append(out, b.String())
}
