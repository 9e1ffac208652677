// Package server runs IMAP sessions: listeners, TLS, one goroutine per
// connection, the session state machine and the command handlers.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/metrics"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/store"
)

// Defaults for the limits in Config. The connection limits let an office
// behind one NAT address work (200 sessions of 3 shared accounts from one
// address, all connecting at once) while one address or one account cannot
// take the server (connlimit.go).
const (
	DefaultMaxLineLength        = 64 << 10
	DefaultMaxLiteralSize       = 64 << 20
	DefaultMaxConns             = 10000
	DefaultMaxPreAuthConnsPerIP = 300
	DefaultConnRatePerIP        = 20.0 // new connections per second, sustained
	DefaultConnBurstPerIP       = 300
	DefaultMaxUserIPConns       = 100
	DefaultMaxUserConns         = 500
	DefaultPreAuthTimeout       = 60 * time.Second
	DefaultIdleTimeout          = 30 * time.Minute
	DefaultWriteTimeout         = 60 * time.Second
)

// Config holds what the server needs at run time.
type Config struct {
	// TLS returns the current certificate config (reloadable). Nil disables
	// STARTTLS and implicit TLS.
	TLS func() *tls.Config
	// InsecureAuth allows LOGIN/AUTHENTICATE PLAIN without TLS.
	InsecureAuth bool
	// Limits; zero means the documented default.
	MaxLineLength  int   // bytes of one command line excluding literals
	MaxLiteralSize int64 // APPENDLIMIT
	// Connection limits (connlimit.go). Addresses are IPv4 addresses or
	// IPv6 /64 prefixes.
	MaxConns             int     // all connections
	MaxPreAuthConnsPerIP int     // connections not logged in, per address
	ConnRatePerIP        float64 // new connections per second per address, sustained
	ConnBurstPerIP       int     // new connections per address at once
	MaxUserIPConns       int     // logged-in connections per user and address
	MaxUserConns         int     // logged-in connections per user
	// PreAuthTimeout bounds the time a client may stay unauthenticated
	// without sending a command; IdleTimeout is the autologout timer of
	// authenticated sessions (at least 30 minutes per RFC 9051).
	PreAuthTimeout time.Duration
	IdleTimeout    time.Duration
	// WriteTimeout bounds how long one write to the client may make no
	// progress; a client that stops reading is disconnected after it.
	WriteTimeout time.Duration
	// ProgressInterval is how long a SEARCH, SORT or THREAD runs before
	// the first RFC 9585 INPROGRESS response and how often they follow;
	// zero means DefaultProgressInterval, negative turns them off.
	ProgressInterval time.Duration
	// ScanSearch answers text SEARCH keys by reading every message, never
	// from the store's full-text index (tests and benchmarks compare the
	// two).
	ScanSearch bool
	// Auth checks credentials (see internal/auth).
	Auth Authenticator
	// Admins are the users who may set any user's quota with SETQUOTA
	// (quota.go); with none, SETQUOTA is refused to everyone.
	Admins []string
	// SubmitUsers are the users acting as message submission servers
	// (BURL, RFC 4468): URLFETCH lets them use URLAUTH URLs whose access
	// identifier is "submit+<user>" (urlauth.go). With none, such URLs
	// fetch as NIL.
	SubmitUsers []string
	// Notify is the change hub the store reports to.
	Notify *notify.Hub
	Logger *slog.Logger
	// Metrics receives the server's series (internal/metrics); nil: none.
	Metrics *metrics.Metrics
	// IMAPSieve runs mailboxes' IMAPSIEVE scripts (imapsieve.go); nil:
	// none. IMAPSieveURL is the ManageSieve server advertised with it
	// (sieve://host[:port]); the capability is offered only with both.
	IMAPSieve    IMAPSieve
	IMAPSieveURL string
}

// Authenticator checks a username and password for a client address. It
// applies throttling itself and returns an error for any failure; the
// session answers every failure the same way (ErrThrottled-like errors
// may be reported with Throttled).
type Authenticator interface {
	Authenticate(ctx context.Context, remote net.Addr, username, password string) error
}

// Throttled is implemented by errors that mean "try later" rather than
// "wrong credentials".
type Throttled interface {
	Throttled() bool
}

// Server serves IMAP on any number of listeners.
type Server struct {
	cfg   Config
	store store.Store
	log   *slog.Logger
	obs   *observer // session ids and metric series (observe.go)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool

	// Connection counts and rate buckets (connlimit.go), under mu.
	preAuth       map[string]int // connections not logged in, per address
	userAddrConns map[userAddr]int
	userConns     map[string]int
	rates         map[string]*rateBucket
	ratesSwept    time.Time

	keyResets keyResets // URLAUTH RESETKEYs, for the user's other sessions (urlauth.go)

	wg      sync.WaitGroup
	baseCtx context.Context
	cancel  context.CancelFunc
}

// New returns a server over st.
func New(cfg Config, st store.Store) *Server {
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = DefaultMaxLineLength
	}
	if cfg.MaxLiteralSize <= 0 {
		cfg.MaxLiteralSize = DefaultMaxLiteralSize
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxPreAuthConnsPerIP <= 0 {
		cfg.MaxPreAuthConnsPerIP = DefaultMaxPreAuthConnsPerIP
	}
	if cfg.ConnRatePerIP <= 0 {
		cfg.ConnRatePerIP = DefaultConnRatePerIP
	}
	if cfg.ConnBurstPerIP <= 0 {
		cfg.ConnBurstPerIP = DefaultConnBurstPerIP
	}
	if cfg.MaxUserIPConns <= 0 {
		cfg.MaxUserIPConns = DefaultMaxUserIPConns
	}
	if cfg.MaxUserConns <= 0 {
		cfg.MaxUserConns = DefaultMaxUserConns
	}
	if cfg.PreAuthTimeout <= 0 {
		cfg.PreAuthTimeout = DefaultPreAuthTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Notify == nil {
		cfg.Notify = notify.New()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:       cfg,
		store:     st,
		log:       cfg.Logger,
		obs:       newObserver(cfg.Metrics),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		baseCtx:   ctx,
		cancel:    cancel,

		preAuth:       make(map[string]int),
		userAddrConns: make(map[userAddr]int),
		userConns:     make(map[string]int),
		rates:         make(map[string]*rateBucket),
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("imap server closed")

// Serve accepts connections on ln until Shutdown. implicitTLS wraps each
// connection in TLS first (IMAPS).
func (s *Server) Serve(ln net.Listener, implicitTLS bool) error {
	if implicitTLS && s.cfg.TLS == nil {
		return errors.New("serve imaps: no TLS configuration")
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			// Transient errors (EMFILE, ECONNABORTED): back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "addr", ln.Addr().String(), "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		addr := auth.ClientKey(nc.RemoteAddr())
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		if msg := s.admitLocked(addr, time.Now()); msg != "" {
			s.mu.Unlock()
			s.obs.listener(implicitTLS).Refused()
			s.log.Warn("connection refused", "remote", addr, "reason", msg)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("* BYE " + msg + "\r\n"))
			nc.Close()
			continue
		}
		c := newConn(s, nc, implicitTLS)
		c.addrKey = addr
		s.obs.listener(implicitTLS).Accepted(implicitTLS)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve(s.baseCtx)
	}
}

// connEnded takes an ended connection off the server's books (its
// session called finish).
func (s *Server) connEnded(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.endConnLocked(c)
	s.mu.Unlock()
	s.wg.Done()
}

// Serving reports whether the server accepts connections on at least n
// listeners and is not shutting down (readiness).
func (s *Server) Serving(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closing && len(s.listeners) >= n
}

// Shutdown stops accepting, sends "* BYE" to every connection, waits for
// in-flight commands to finish (or ctx to end) and returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
