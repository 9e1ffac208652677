package server

import (
	"net"
	"time"
)

// writeTimeoutConn sets a fresh write deadline before every Write, so a
// client that stops reading (its receive window fills) makes the write
// fail after timeout instead of blocking the session forever. A slow but
// reading client is unaffected: each buffered chunk only has to make
// progress within the timeout.
type writeTimeoutConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeTimeoutConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
