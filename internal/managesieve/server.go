// Package managesieve serves ManageSieve (RFC 5804): clients log in with
// the same users, passwords and login throttling as IMAP, and list, upload,
// check, activate, download, rename and delete the user's Sieve scripts,
// which live in the store (store.SieveStore). The package does not know
// the Sieve language: Config.Check validates a script and
// Config.Extensions names the extensions the interpreter supports.
package managesieve

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
	"github.com/tern-imap/tern/internal/store"
)

// Defaults for the limits in Config.
const (
	DefaultMaxLineLength  = 8 << 10
	DefaultMaxConns       = 1000
	DefaultMaxConnsPerIP  = 50
	DefaultMaxUserConns   = 10
	DefaultPreAuthTimeout = 60 * time.Second
	DefaultIdleTimeout    = 30 * time.Minute
	DefaultWriteTimeout   = 60 * time.Second
	// DefaultMaxErrors is how many failed commands in a row end a session
	// that is not logged in, and maxPreAuthCommands how many commands it
	// may send at all.
	DefaultMaxErrors   = 10
	maxPreAuthCommands = 100
	// maxDiscard bounds the bytes of a too large literal that are read
	// and dropped so the session can answer NO and go on; a larger one
	// ends the session.
	maxDiscard = 64 << 20
	// maxPreAuthLiteral bounds literals before login (a SASL response).
	maxPreAuthLiteral = 8 << 10
)

// Authenticator checks a username and password for a client address,
// applying throttling itself (auth.Authenticator, shared with IMAP).
type Authenticator interface {
	Authenticate(ctx context.Context, remote net.Addr, username, password string) error
}

// Warning is implemented by errors of Config.Check that do not reject the
// script: PUTSCRIPT stores it and answers OK (WARNINGS) with the text.
type Warning interface {
	Warning() bool
}

// Config holds what the server needs.
type Config struct {
	// TLS returns the current certificate config (reloadable); nil
	// disables STARTTLS.
	TLS func() *tls.Config
	// InsecureAuth allows AUTHENTICATE PLAIN without TLS (like IMAP).
	InsecureAuth bool
	Auth         Authenticator
	// Check validates a script (compiles it); nil accepts every script
	// within the size limit. Its error text is sent to the client.
	Check func(src []byte) error
	// Extensions lists the Sieve extensions for the SIEVE capability.
	Extensions func() []string
	// MaxRedirects and Notify are advertised when set (MAXREDIRECTS,
	// NOTIFY capabilities).
	MaxRedirects int
	Notify       []string
	// Implementation is the IMPLEMENTATION capability; "" means "tern".
	Implementation string
	// ScriptsChanged, when set, is called after PUTSCRIPT, SETACTIVE,
	// DELETESCRIPT or RENAMESCRIPT changed a user's scripts (cmd/tern
	// forgets the user's cached IMAPSIEVE scripts).
	ScriptsChanged func(user string)

	MaxLineLength int // bytes of a command outside its literals
	MaxConns      int // all connections
	MaxConnsPerIP int // connections per client address (IPv4, IPv6 /64)
	// MaxUserConns bounds one user's logged-in connections; a login over
	// it is answered NO (TRYLATER) and the connection stays usable.
	MaxUserConns   int
	PreAuthTimeout time.Duration
	IdleTimeout    time.Duration
	WriteTimeout   time.Duration
	Logger         *slog.Logger
}

// Server serves ManageSieve on any number of listeners.
type Server struct {
	cfg   Config
	store store.Store
	log   *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perIP     map[string]int
	perUser   map[string]int
	closing   bool
	wg        sync.WaitGroup

	baseCtx context.Context
	cancel  context.CancelFunc
}

// New returns a server over st.
func New(cfg Config, st store.Store) *Server {
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = DefaultMaxLineLength
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
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
	if cfg.Implementation == "" {
		cfg.Implementation = "tern"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:       cfg,
		store:     st,
		log:       cfg.Logger.With("proto", "managesieve"),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		perIP:     map[string]int{},
		perUser:   map[string]int{},
		baseCtx:   ctx,
		cancel:    cancel,
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("managesieve server closed")

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
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
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		delay = 0
		c := newConn(s, nc)
		if msg := s.admit(c); msg != "" {
			s.log.Warn("connection refused", "remote", nc.RemoteAddr().String(), "reason", msg)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(nc, "BYE (TRYLATER) %s\r\n", quote(msg))
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.release(c)
			c.serve(s.baseCtx)
		}()
	}
}

// admit registers c, or returns why it is refused.
func (s *Server) admit(c *conn) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return "Server shutting down"
	case len(s.conns) >= s.cfg.MaxConns:
		return "Too many connections"
	case s.perIP[c.addrKey] >= s.cfg.MaxConnsPerIP:
		return "Too many connections from your address"
	}
	s.conns[c] = struct{}{}
	s.perIP[c.addrKey]++
	return ""
}

func (s *Server) release(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.perIP[c.addrKey]--; s.perIP[c.addrKey] <= 0 {
		delete(s.perIP, c.addrKey)
	}
}

// takeUserSlot counts a login of user, or reports false when the user
// already has MaxUserConns logged-in connections.
func (s *Server) takeUserSlot(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUser[user] >= s.cfg.MaxUserConns {
		return false
	}
	s.perUser[user]++
	return true
}

// releaseUserSlot undoes takeUserSlot (logout, UNAUTHENTICATE, end of
// the session).
func (s *Server) releaseUserSlot(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUser[user]--; s.perUser[user] <= 0 {
		delete(s.perUser, user)
	}
}

// Shutdown stops the listeners and ends sessions: each gets BYE at its
// next command or at once if it is waiting for one; when ctx ends first
// the connections are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.interrupt()
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// addrKey is the key a client address is counted under.
func addrKey(a net.Addr) string { return auth.ClientKey(a) }
