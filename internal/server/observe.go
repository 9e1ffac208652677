package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/logctx"
	"github.com/tern-imap/tern/internal/metrics"
)

// What a session is observed by: its id in every log line, one line when
// it ends, and the Prometheus series (internal/metrics) it moves. Every
// series a command touches is created in newObserver, so counting a
// command is a map lookup, two atomic adds and a histogram observation.

// uidCommands are the commands that have a UID form, counted apart.
var uidCommands = []string{"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD"}

// Command labels for what is not a known command.
const (
	labelUnknown = "unknown" // a well-formed command of a name tern does not know
	labelInvalid = "invalid" // a line that did not parse (answered BAD or NO)
)

// observer holds a server's session ids and precreated series.
type observer struct {
	m         *metrics.Metrics
	listeners [2]*metrics.ListenerSeries // [0] imap, [1] imaps
	cmds      map[string]*metrics.CommandSeries
	uidCmds   map[string]*metrics.CommandSeries
	unknown   *metrics.CommandSeries
	invalid   *metrics.CommandSeries

	idPrefix string // random per process, so ids differ across restarts
	idSeq    atomic.Uint64
}

func newObserver(m *metrics.Metrics) *observer {
	var b [4]byte
	rand.Read(b[:])
	o := &observer{m: m, idPrefix: hex.EncodeToString(b[:]) + "-"}
	if m == nil {
		return o
	}
	o.listeners = [2]*metrics.ListenerSeries{m.Listener("imap"), m.Listener("imaps")}
	o.cmds = make(map[string]*metrics.CommandSeries, len(commands))
	for name := range commands {
		o.cmds[name] = m.Command(name)
	}
	o.uidCmds = make(map[string]*metrics.CommandSeries, len(uidCommands))
	for _, name := range uidCommands {
		o.uidCmds[name] = m.Command("UID " + name)
	}
	o.unknown = m.Command(labelUnknown)
	o.invalid = m.Command(labelInvalid)
	return o
}

// newSessionID returns a short id unique within the process and unlikely
// to repeat across restarts.
func (o *observer) newSessionID() string {
	return o.idPrefix + strconv.FormatUint(o.idSeq.Add(1), 36)
}

func (o *observer) listener(implicitTLS bool) *metrics.ListenerSeries {
	if implicitTLS {
		return o.listeners[1]
	}
	return o.listeners[0]
}

// command returns the series of cmd (nil without metrics).
func (o *observer) command(cmd *imap.Command) *metrics.CommandSeries {
	if o.m == nil {
		return nil
	}
	if cmd.UID {
		if s := o.uidCmds[cmd.Name]; s != nil {
			return s
		}
		return o.unknown
	}
	if s := o.cmds[cmd.Name]; s != nil {
		return s
	}
	return o.unknown
}

// meteredConn counts the bytes that cross a connection (TLS records
// included: it sits below crypto/tls) for the session's end line and the
// byte counters.
type meteredConn struct {
	net.Conn
	m       *metrics.Metrics
	in, out atomic.Int64
}

func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.in.Add(int64(n))
		c.m.AddBytes(n, 0)
	}
	return n, err
}

func (c *meteredConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent(int64(n))
	return n, err
}

// sent counts n bytes sent to the client, also those sent around Write
// (sendfile).
func (c *meteredConn) sent(n int64) {
	if n > 0 {
		c.out.Add(n)
		c.m.AddBytes(0, int(n))
	}
}

// sessionState maps a connection state to the sessions gauge's.
func sessionState(s state) metrics.SessionState {
	switch s {
	case stateNotAuth:
		return metrics.StateNotAuthenticated
	case stateAuth:
		return metrics.StateAuthenticated
	case stateSelected:
		return metrics.StateSelected
	}
	return metrics.StateNone
}

// setState changes the session's state and the sessions gauge with it.
func (c *conn) setState(s state) {
	c.srv.obs.m.SessionMoved(sessionState(c.state), sessionState(s))
	c.state = s
}

// Reasons a session ended, as its end line says.
const (
	endLogout       = "logout"
	endServerEnded  = "ended by server" // storage failure, mailbox gone
	endClientClosed = "client closed connection"
	endIdleTimeout  = "idle timeout"
	endShutdown     = "server shutdown"
	endAbuse        = "abuse limit"
	endBadInput     = "too much bad input"
	endTLSFailed    = "tls handshake failed"
	endReadError    = "read error"
	endWriteError   = "write error"
	endConnError    = "connection error"
	endPanic        = "internal error"
)

// startSession gives the connection its session id: every log line of
// the session carries it, the authenticator's too (through ctx).
func (c *conn) startSession(ctx context.Context) context.Context {
	c.id = c.srv.obs.newSessionID()
	c.started = time.Now()
	c.log = c.srv.log.With("session", c.id, "remote", c.remote.String())
	c.baseLog = c.log
	c.srv.obs.m.SessionMoved(metrics.StateNone, sessionState(c.state))
	return logctx.With(ctx, "session", c.id)
}

// endSession logs the session's one end line and takes it off the gauges.
// Never a password or message content: only counts.
func (c *conn) endSession() {
	c.srv.obs.m.SessionMoved(sessionState(c.state), metrics.StateNone)
	c.srv.obs.listener(c.implicitTLS).Closed(c.isTLS)
	reason := c.endReason
	if reason == "" {
		reason = endConnError
	}
	level := slog.LevelInfo
	if c.balancerCheck && !c.loggedIn {
		level = slog.LevelDebug // a health check every second or two
	}
	c.baseLog.Log(context.Background(), level, "session ended", "user", c.user, "duration", time.Since(c.started).Round(time.Millisecond),
		"commands", c.commands, "bytes_in", c.metered.in.Load(), "bytes_out", c.metered.out.Load(), "reason", reason)
}

// ending records why the session ends (the first reason given wins).
func (c *conn) ending(reason string) {
	if c.endReason == "" {
		c.endReason = reason
	}
}

// commandDone counts a dispatched command with the tagged result it got
// (none: the connection broke; not counted). IDLE's time is the client's,
// so it is counted without latency.
func (c *conn) commandDone(cmd *imap.Command, start time.Time) {
	s := c.srv.obs.command(cmd)
	if s == nil {
		return
	}
	d := time.Since(start)
	if cmd.Name == "IDLE" {
		d = -1
	}
	s.Done(c.result, d)
}
