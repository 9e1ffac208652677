package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
)

// Cross-node change signals. What a write transaction changed goes to
// the other nodes as
//
//	pg_notify('tern_changes', "<node> <user-len>:<user> <id>:<modseq> ... [L]")
//
// sent inside the transaction, so that PostgreSQL delivers it exactly
// when the transaction commits (queueNotify), or, for a transaction that
// commits relaxed, after the commit with the node's other relaxed writes
// of a few milliseconds (signals.go). Each Store with a Notifier keeps
// one connection (outside the pool) LISTENing on the channel and hands
// what other nodes sent to its Notifier; its own signals it already
// delivered after the commit (notifyLocal) and skips by node id. A signal
// only makes sessions ask the store what changed (the mailbox index is
// validated by modseq), so a lost one costs freshness, never
// correctness: a session on another node that has the mailbox selected
// sees the change at the mailbox's next signal, at the node's next check
// of the watched mailboxes' heads (heads.go: every two seconds, and
// after the listener reconnects), or when it selects the mailbox again
// (SELECT and STATUS compare the mailbox row).

const notifyChannel = "tern_changes"

// queueNotify adds to b the transaction's change signal, delivered when
// it commits.
func (w *wtx) queueNotify(b *pgx.Batch) {
	if len(w.changed) == 0 && !w.list {
		return
	}
	for _, p := range w.a.s.notifyPayloads(w.a.name, w.changed, w.list) {
		b.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, p)
	}
}

// change is one decoded signal.
type change struct {
	node    string
	user    string
	changed map[int64]uint64
	list    bool
	// acl is set for an ACL signal: user's entry for identifier changed.
	acl        bool
	identifier string
}

// aclMark separates the owner from the identifier in an ACL signal,
//
//	"<node> <user-len>:<user> A <identifier>"
//
// sent after SetACL commits (signalACL); the identifier is the rest.
const aclMark = " A "

// aclChanged is what an ACL change of owner's for identifier that this
// node made or heard of (or may have missed: store.Anyone) changes here:
// the head check takes the entries afresh, and tellACLChanged.
func (s *Store) aclChanged(owner, identifier string) {
	s.headsSeen.sawACL(identifier)
	s.tellACLChanged(owner, identifier)
}

// tellACLChanged drops the Sharers answers an ACL change of owner's for
// identifier may change and tells this process's notifier.
func (s *Store) tellACLChanged(owner, identifier string) {
	s.sharers.forget(identifier)
	if n, ok := s.opts.Notifier.(store.ACLNotifier); ok {
		n.ACLChanged(owner, identifier)
	}
}

// signalACL tells this process's notifier and (through NOTIFY) the other
// nodes that owner's ACL entry for identifier changed. It is sent after
// the commit, outside the transaction: a lost signal only leaves NOTIFY
// sessions with their old view of shared mailboxes until the next one,
// or until the head check finds the entries changed (heads.go: within
// about two seconds for the users NOTIFY watches), and every event they
// report is checked against the rights again.
func (s *Store) signalACL(ctx context.Context, owner, identifier string) {
	s.aclChanged(owner, identifier)
	p := s.node + " " + strconv.Itoa(len(owner)) + ":" + owner + aclMark + identifier
	// Sent even when the caller has given up (the change committed), but
	// not for longer than a change signal may take.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signalTimeout)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, p); err != nil {
		s.log.Warn("postgres store: ACL change signal not sent", "owner", owner, "err", err)
	}
}

func parsePayload(p string) (change, error) {
	c := change{changed: map[int64]uint64{}}
	node, rest, ok := strings.Cut(p, " ")
	if !ok {
		return c, fmt.Errorf("bad change signal %q", p)
	}
	c.node = node
	ls, rest, ok := strings.Cut(rest, ":")
	n, err := strconv.Atoi(ls)
	if !ok || err != nil || n < 0 || n > len(rest) {
		return c, fmt.Errorf("bad change signal %q", p)
	}
	c.user, rest = rest[:n], rest[n:]
	if id, ok := strings.CutPrefix(rest, aclMark); ok {
		c.acl, c.identifier = true, id
		return c, nil
	}
	for _, f := range strings.Fields(rest) {
		if f == "L" {
			c.list = true
			continue
		}
		ids, mss, ok := strings.Cut(f, ":")
		id, err1 := strconv.ParseInt(ids, 10, 64)
		ms, err2 := strconv.ParseUint(mss, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return c, fmt.Errorf("bad change signal %q", p)
		}
		c.changed[id] = ms
	}
	return c, nil
}

// startListening connects the listening connection (so that Open fails
// when it cannot) and starts the goroutine that serves it.
func (s *Store) startListening(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := listenConn(ctx, cfg)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListen = cancel
	s.listenDone, s.headsDone = make(chan struct{}), make(chan struct{})
	s.recheck = make(chan struct{}, 1)
	go s.listen(lctx, cfg, conn)
	interval := s.opts.headCheckInterval
	if interval <= 0 {
		interval = headCheckInterval
	}
	go func() {
		defer close(s.headsDone)
		s.watchHeads(lctx, interval, s.recheck) // heads.go
	}()
	return nil
}

func listenConn(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("listen for changes: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("listen for changes: %w", err)
	}
	return conn, nil
}

// listen hands other nodes' signals to the notifier until ctx ends,
// reconnecting (with a growing pause, up to 5 s) when the connection
// breaks.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn) {
	defer close(s.listenDone)
	pause := 100 * time.Millisecond
	for {
		if conn != nil {
			err := s.serveNotifications(ctx, conn)
			conn.Close(context.Background())
			conn = nil
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("postgres store: change signals interrupted; reconnecting", "err", err)
			s.reset() // the database may have restarted (restart.go)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		var err error
		if conn, err = listenConn(ctx, cfg); err != nil {
			pause = min(2*pause, 5*time.Second)
			continue
		}
		pause = 100 * time.Millisecond
		// The server may have crashed again while nothing listened.
		s.reset()
		// Signals sent while no connection listened are lost: the
		// watched mailboxes are compared with the database now,
		// Sharers asks the database again, and the sessions that
		// watch what is shared with their user (NOTIFY) look at it
		// afresh, as after a grant to anyone.
		s.aclChanged("", store.Anyone)
		select {
		case s.recheck <- struct{}{}:
		default:
		}
	}
}

func (s *Store) serveNotifications(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		c, err := parsePayload(n.Payload)
		if err != nil {
			s.log.Warn("postgres store: ignoring a change signal", "err", err)
			continue
		}
		if c.node == s.node {
			continue
		}
		if c.acl {
			s.aclChanged(c.user, c.identifier)
			continue
		}
		s.raiseFloor(c.changed) // replica.go
		s.notifyLocal(c.user, c.changed, c.list)
	}
}
