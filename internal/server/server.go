// Package server runs IMAP sessions: listeners, TLS, one goroutine per
// connection, the session state machine and the command handlers.
package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"

	"github.com/tern-imap/tern/internal/store"
)

// Config holds what the server needs at run time.
type Config struct {
	// TLS returns the current certificate config (reloadable). Nil disables
	// STARTTLS and implicit TLS.
	TLS func() *tls.Config
	// InsecureAuth allows LOGIN/AUTHENTICATE PLAIN without TLS.
	InsecureAuth bool
	// Limits; zero means the documented default.
	MaxLineLength  int   // bytes of one command line excluding literals (default 64 KiB)
	MaxLiteralSize int64 // APPENDLIMIT (default 64 MiB)
	MaxConnsPerIP  int   // default 50
	MaxConns       int   // default 10000
	// Authenticator checks credentials (see internal/auth).
	Auth   Authenticator
	Logger *slog.Logger
}

// Authenticator checks a username and password for a client address. It
// applies throttling itself and returns an error for any failure; the
// session answers every failure the same way.
type Authenticator interface {
	Authenticate(ctx context.Context, remote net.Addr, username, password string) error
}

// Server serves IMAP on any number of listeners.
type Server struct {
	cfg   Config
	store store.Store
}

// New returns a server over st.
func New(cfg Config, st store.Store) *Server {
	return &Server{cfg: cfg, store: st}
}

// Serve accepts connections on ln until Shutdown. implicitTLS wraps each
// connection in TLS first (IMAPS).
func (s *Server) Serve(ln net.Listener, implicitTLS bool) error { panic("TODO") }

// Shutdown stops accepting, sends "* BYE" to every connection, waits for
// in-flight commands to finish (or ctx to end) and returns.
func (s *Server) Shutdown(ctx context.Context) error { panic("TODO") }
