package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/notify"
)

// maxIdleLine bounds what a client may send while idling before DONE.
const maxIdleLine = 1024

// errIdling means IDLE began: the session loop waits for DONE and changes
// (idleStep) and completes the command then.
var errIdling = errors.New("idling")

// idleWait is an IDLE command in progress.
type idleWait struct {
	cmd      *imap.Command
	start    time.Time
	deadline time.Time
	line     []byte // what the client sent so far, up to DONE
	// retry: sending the updates failed; the end of IDLE tries again.
	retry  bool
	selSub *notify.Subscription // the selected mailbox's, woken by changes
	unwake func()               // removes the wake-up from NOTIFY's subscription
}

// cmdIdle implements IDLE (RFC 2177, RFC 9051 §6.3.13): updates are sent
// as they happen until the client sends DONE.
//
// An idling connection holds no bufio buffers and no second goroutine: the
// session loop blocks in a read into a small array (idleStep), a change
// signal interrupts that read through the read deadline, and a connection
// idle for long parks (park.go).
func cmdIdle(ctx context.Context, c *conn, cmd *imap.Command) error {
	// A storage error while sending updates is logged and retried after
	// IDLE (syncFailed) instead of ending the command.
	retry := false
	if c.sel != nil {
		if err := c.sync(ctx, true); err != nil {
			if err := c.syncFailed(cmd, err); err != nil {
				return err
			}
			retry, c.sel.dirty = true, false
		}
	}
	c.w.WriteString("+ idling\r\n")
	if c.inputBuffered() {
		// The client pipelined DONE (or more): no need to wait.
		if err := c.flush(); err != nil {
			return err
		}
		if retry {
			c.sel.dirty = true
		}
		return c.idleDone()
	}
	if err := c.release(); err != nil {
		return err
	}
	w := &idleWait{cmd: cmd, retry: retry, deadline: time.Now().Add(c.srv.cfg.IdleTimeout)}
	if c.sel != nil {
		w.selSub = c.sel.sub
		w.selSub.SetWake(c.wakeRead)
	}
	w.unwake = c.notifyIdleWake(c.wakeRead) // NOTIFY: other mailboxes too (notify.go)
	c.idle = w
	return errIdling
}

// wakeRead interrupts the connection's read: a change to send.
func (c *conn) wakeRead() {
	c.woken.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// idleStep sends what changed, then waits for the client's input or the
// next change, and completes IDLE at DONE, at an error or at the end of
// the session.
func (c *conn) idleStep(ctx context.Context) loopStep {
	var n int
	var err error
	if c.resumed.ok {
		n, err = c.takeResumed()
	} else {
		if err := c.idleUpdates(ctx); err != nil {
			return c.idleEnd(ctx, err)
		}
		c.nc.SetReadDeadline(c.readDeadlineFor(c.idle.deadline))
		c.waiting.Store(true)
		// A signal or shutdown that raced with setting the deadline.
		if c.woken.Load() || c.shuttingDown() || (c.sel != nil && len(c.sel.sub.C) > 0) || c.notifyPending() {
			c.waiting.Store(false)
			return stepNext
		}
		n, err = c.nc.Read(c.small[:])
	}
	if err != nil && n == 0 && c.parkNow(err, c.idle.deadline) {
		return stepPark
	}
	c.waiting.Store(false)
	done, err := c.idleInput(n, err)
	if done {
		return c.idleEnd(ctx, err)
	}
	return stepNext
}

// idleUpdates sends the selected mailbox's changes and NOTIFY's events
// that are pending; errLogout when the server shuts down.
func (c *conn) idleUpdates(ctx context.Context) error {
	if c.shuttingDown() {
		c.byeShutdown()
		return errLogout
	}
	w := c.idle
	if c.sel != nil {
		select {
		case <-c.sel.sub.C:
			c.sel.dirty = true
		default:
		}
		if c.sel.dirty {
			c.worked = true
			c.acquire(nil)
			// A change of another user's mailbox is told only to
			// who may still read it (acl.go).
			if err := c.recheckRights(ctx, w.cmd); err != nil {
				return err
			}
			if err := c.sync(ctx, true); err != nil {
				if err := c.syncFailed(w.cmd, err); err != nil {
					return err
				}
				// Retried at the next change or after DONE, not in a loop.
				w.retry, c.sel.dirty = true, false
			} else {
				w.retry = false
				c.syncFailures = 0
			}
			if err := c.release(); err != nil {
				return err
			}
		}
	}
	c.woken.Store(false)
	if c.notifyPending() {
		c.worked = true
	}
	return c.notifyIdle(ctx) // NOTIFY (notify.go)
}

// idleInput takes what a read during IDLE returned: done is set at DONE
// (err nil), at other input (BAD) and when the wait ended (the client
// gone, the idle timer; err says which). A change signal is not done.
func (c *conn) idleInput(n int, err error) (done bool, _ error) {
	w := c.idle
	if n > 0 {
		w.line = append(w.line, c.small[:n]...)
		if i := bytes.IndexByte(w.line, '\n'); i >= 0 {
			c.nc.SetReadDeadline(time.Time{})
			c.acquire(w.line[i+1:])
			got := bytes.TrimRight(w.line[:i], "\r")
			if !bytes.EqualFold(got, []byte("DONE")) {
				return true, bad("", "Expected DONE")
			}
			return true, nil
		}
		if len(w.line) > maxIdleLine {
			return true, errClose
		}
	}
	if err == nil {
		return false, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if !time.Now().Before(w.deadline) {
			c.bye("Autologout; idle for too long")
			return true, errLogout
		}
		return false, nil // woken by a change or by shutdown
	}
	return true, err
}

// idleEnd completes IDLE with the tagged response for err (complete).
func (c *conn) idleEnd(ctx context.Context, err error) loopStep {
	w := c.idle
	c.idle = nil
	c.waiting.Store(false)
	if w.selSub != nil {
		w.selSub.SetWake(nil)
	}
	w.unwake()
	c.woken.Store(false) // a change that came with DONE is sent by complete
	c.acquire(nil)
	if w.retry && c.sel != nil {
		c.sel.dirty = true
	}
	c.worked = true
	return c.commandEnded(w.cmd, w.start, c.complete(ctx, w.cmd, err))
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
