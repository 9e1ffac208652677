package server

import (
	"bytes"
	"context"
	"time"

	"github.com/tern-imap/tern/imap"
)

// cmdIdle implements IDLE (RFC 2177, RFC 9051 §6.3.13): updates are sent
// as they happen until the client sends DONE.
func cmdIdle(ctx context.Context, c *conn, cmd *imap.Command) error {
	if c.sel != nil {
		if err := c.sync(ctx, true); err != nil {
			return err
		}
	}
	c.w.WriteString("+ idling\r\n")
	if err := c.bw.Flush(); err != nil {
		return err
	}
	type lineResult struct {
		line []byte
		err  error
	}
	lines := make(chan lineResult, 1)
	go func() {
		line, err := c.r.ReadLine()
		lines <- lineResult{line, err}
	}()
	timer := time.NewTimer(c.srv.cfg.IdleTimeout)
	defer timer.Stop()
	var changes <-chan struct{}
	if c.sel != nil {
		changes = c.sel.sub.C
	}
	for {
		select {
		case lr := <-lines:
			if lr.err != nil {
				return lr.err
			}
			if !bytes.EqualFold(bytes.TrimRight(lr.line, "\r\n"), []byte("DONE")) {
				return bad("", "Expected DONE")
			}
			return nil
		case <-changes:
			c.sel.dirty = true
			if err := c.sync(ctx, true); err != nil {
				return err
			}
			if err := c.bw.Flush(); err != nil {
				return err
			}
		case <-c.quit:
			c.bye("Server shutting down")
			return errLogout
		case <-timer.C:
			c.bye("Autologout; idle for too long")
			return errLogout
		}
	}
}
