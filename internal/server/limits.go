package server

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// writeTimeoutConn sets a fresh write deadline before every Write, so a
// client that stops reading (its receive window fills) makes the write
// fail after timeout instead of blocking the session forever. A slow but
// reading client is unaffected: a write only has to make progress within
// the timeout, and gets a fresh one for the rest when it does.
type writeTimeoutConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeTimeoutConn) Write(p []byte) (int, error) {
	written := 0
	for {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(p[written:])
		written += n
		// A large write (a 1 MiB body buffer) that timed out having sent
		// something made progress: a fresh deadline for the rest, so the
		// timeout bounds a stall, not the time a slow client takes.
		if err == nil || n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
	}
}

// Abuse bounds of one connection.
const (
	// maxPreAuthCommands is how many commands a client may send before it
	// logs in (CAPABILITY, STARTTLS, a few failed LOGINs need far fewer).
	maxPreAuthCommands = 25
	// maxBadCommands is how many BAD responses in a row end a connection:
	// a client that only sends garbage is not an IMAP client.
	maxBadCommands = 20
)

// countBad tracks consecutive BAD responses.
func (c *conn) countBad(kind string) {
	if kind == "BAD" {
		c.bads++
	} else {
		c.bads = 0
	}
}

// overLimit returns the BYE text when the connection has used up one of
// its abuse bounds, or "".
func (c *conn) overLimit() string {
	switch {
	case c.bads >= maxBadCommands:
		return "Too many invalid commands"
	case c.state == stateNotAuth && c.preAuthCmds >= maxPreAuthCommands:
		return "Too many commands without logging in"
	}
	return ""
}

// isDiskFull reports whether err means the server ran out of disk space:
// ENOSPC/EDQUOT from a file write, or SQLITE_FULL from the database.
func isDiskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == 13 { // SQLITE_FULL
		return true
	}
	return strings.Contains(err.Error(), "database or disk is full")
}

// storageUnusable reports whether a storage error means the user's
// database cannot be used any more by this session (SQLite: the file is
// corrupt, is not a database, cannot be opened, or disk I/O failed), as
// opposed to a failure worth retrying.
func storageUnusable(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		switch coded.Code() & 0xff {
		case 10, 11, 14, 26: // SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB
			return true
		}
	}
	return false
}
