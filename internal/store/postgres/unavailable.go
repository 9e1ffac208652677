package postgres

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/store"
)

func init() { store.RegisterUnavailable(unreachable) }

// unreachable reports whether err says the database server could not be
// reached or went away: a connection that could not be made, a read or
// write on one that failed (dbConn), or the server's own word that it is
// shutting down, restarting or recovering, or out of connections. A
// cancelled context is the caller's (its client went away), not the
// database's; an expired one inside a connect error is the URL's
// connect_timeout against a server that does not answer. The blob
// store's own such errors (blob.ErrUnavailable) count too.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, blob.ErrUnavailable) {
		return true
	}
	var ioErr *dbIOError
	var ce *pgconn.ConnectError
	if errors.As(err, &ioErr) || errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300": // admin or crash shutdown, cannot connect now, too many connections
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection exception
	}
	return false
}

// dialMarked wraps a DialFunc so that the connections it makes mark
// their errors (dbConn).
func dialMarked(dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err // pgconn makes it a *pgconn.ConnectError
		}
		return dbConn{c}, nil
	}
}

// dbConn is a connection to the database server whose read and write
// errors are marked as such (dbIOError): pgx hands them up as they are (an
// io.ErrUnexpectedEOF, a *net.OpError), and the IMAP server must not take
// them for its client's connection going away (store.Unavailable).
type dbConn struct{ net.Conn }

func (c dbConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		err = &dbIOError{err}
	}
	return n, err
}

func (c dbConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		err = &dbIOError{err}
	}
	return n, err
}

// dbIOError is an error of a dbConn. It is a net.Error as the error it
// wraps is one (pgconn and crypto/tls ask whether a read timed out: a
// deadline is how pgconn interrupts a statement whose context ended).
type dbIOError struct{ err error }

func (e *dbIOError) Error() string { return e.err.Error() }
func (e *dbIOError) Unwrap() error { return e.err }

func (e *dbIOError) Timeout() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

// Temporary is net.Error's (deprecated, still asked by crypto/tls).
func (e *dbIOError) Temporary() bool {
	var ne interface{ Temporary() bool }
	return errors.As(e.err, &ne) && ne.Temporary()
}
