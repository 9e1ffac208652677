package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"time"

	"github.com/tern-imap/tern/imap"
)

// maxIdleLine bounds what a client may send while idling before DONE.
const maxIdleLine = 1024

// cmdIdle implements IDLE (RFC 2177, RFC 9051 §6.3.13): updates are sent
// as they happen until the client sends DONE.
//
// An idling connection holds no bufio buffers and no second goroutine: the
// connection's own goroutine blocks in a read into a small array, and a
// change signal interrupts that read through the read deadline.
func cmdIdle(ctx context.Context, c *conn, cmd *imap.Command) error {
	// A storage error while sending updates is logged and retried after
	// IDLE (syncFailed) instead of ending the command; retry makes the
	// command's end try again.
	retry := false
	defer func() {
		if retry && c.sel != nil {
			c.sel.dirty = true
		}
	}()
	if c.sel != nil {
		if err := c.sync(ctx, true); err != nil {
			if err := c.syncFailed(cmd, err); err != nil {
				return err
			}
			retry, c.sel.dirty = true, false
		}
	}
	c.w.WriteString("+ idling\r\n")
	if c.br.Buffered() > 0 || (c.prefix != nil && len(c.prefix.pre) > 0) {
		// The client pipelined DONE (or more): no need to wait.
		if err := c.flush(); err != nil {
			return err
		}
		return c.idleDone()
	}
	if err := c.release(); err != nil {
		return err
	}
	wake := func() {
		c.woken.Store(true)
		c.nc.SetReadDeadline(time.Now())
	}
	if c.sel != nil {
		c.sel.sub.SetWake(wake)
		defer c.sel.sub.SetWake(nil)
	}
	defer c.notifyIdleWake(wake)() // NOTIFY: other mailboxes too (notify.go)
	defer c.acquire(nil)
	deadline := time.Now().Add(c.srv.cfg.IdleTimeout)
	var line []byte
	for {
		if c.shuttingDown() {
			c.bye("Server shutting down")
			return errLogout
		}
		if c.sel != nil {
			c.woken.Store(false)
			select {
			case <-c.sel.sub.C:
				c.sel.dirty = true
			default:
			}
			if c.sel.dirty {
				c.acquire(nil)
				// A change of another user's mailbox is told only to
				// who may still read it (acl.go).
				if err := c.recheckRights(ctx, cmd); err != nil {
					return err
				}
				if err := c.sync(ctx, true); err != nil {
					if err := c.syncFailed(cmd, err); err != nil {
						return err
					}
					// Retried at the next change or after DONE, not in a loop.
					retry, c.sel.dirty = true, false
				} else {
					retry = false
					c.syncFailures = 0
				}
				if err := c.release(); err != nil {
					return err
				}
			}
		}
		c.woken.Store(false)
		if err := c.notifyIdle(ctx); err != nil { // NOTIFY (notify.go)
			return err
		}
		c.nc.SetReadDeadline(deadline)
		c.waiting.Store(true)
		// A signal or shutdown that raced with setting the deadline.
		if c.woken.Load() || c.shuttingDown() || (c.sel != nil && len(c.sel.sub.C) > 0) || c.notifyPending() {
			c.waiting.Store(false)
			continue
		}
		n, err := c.nc.Read(c.small[:])
		c.waiting.Store(false)
		if n > 0 {
			line = append(line, c.small[:n]...)
			if i := bytes.IndexByte(line, '\n'); i >= 0 {
				c.nc.SetReadDeadline(time.Time{})
				c.acquire(line[i+1:])
				got := bytes.TrimRight(line[:i], "\r")
				if !bytes.EqualFold(got, []byte("DONE")) {
					return bad("", "Expected DONE")
				}
				return nil
			}
			if len(line) > maxIdleLine {
				return errClose
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !time.Now().Before(deadline) {
					c.bye("Autologout; idle for too long")
					return errLogout
				}
				continue // woken by a change or by shutdown
			}
			return err
		}
	}
}

// idleDone reads the DONE that ends IDLE from buffered input.
func (c *conn) idleDone() error {
	line, err := c.r.ReadLine()
	if err != nil {
		return err
	}
	if !bytes.EqualFold(line, []byte("DONE")) {
		return bad("", "Expected DONE")
	}
	return nil
}
