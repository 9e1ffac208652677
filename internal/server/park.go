package server

import (
	"context"
	"errors"
	"net"
	"runtime/debug"
	"syscall"
	"time"
)

// Parking: a connection that waits for its client gives its goroutine's
// stack back.
//
// A goroutine's stack grows while it runs a command (tens of KiB through
// SQLite) and the runtime gives it back only by halves, at a garbage
// collection, while at most a quarter of it is in use: a session waiting
// for input under its loop, the command dispatcher and IDLE's frames
// (about 1.9 KiB deep) keeps 8 KiB for as long as it waits. So once a
// connection has waited parkAfter for its client, it hands the wait to a
// new goroutine whose first call is the read it waits on (resume), on the
// smallest stack the runtime gives, and its own goroutine ends. A client
// that sends its next command within parkAfter never pays for the new
// goroutine or for growing its stack again.

// parkAfter is how long a connection waits for input before it parks.
const parkAfter = 200 * time.Millisecond

// errPark means the connection parks: the session loop starts resume and
// ends the current goroutine.
var errPark = errors.New("park the connection")

// parkedRead is the result of the read a parked connection waited on.
type parkedRead struct {
	ok  bool
	n   int
	err error
}

// resume is a parked connection's goroutine: the read first (its frames
// are all the stack it holds while the client is idle), then the session
// goes on where it parked (commandStep, idleStep).
func (c *conn) resume(ctx context.Context) {
	c.resumed = c.parkedRead()
	c.worked = false
	c.run(ctx, false)
}

// parkedRead is the read a parked connection waits on. A panic in it ends
// the session as one in the session loop does (run).
func (c *conn) parkedRead() (r parkedRead) {
	defer func() {
		if v := recover(); v != nil {
			c.ending(endPanic)
			c.log.Error("panic in a parked connection's read; closing connection", "panic", v, "stack", string(debug.Stack()))
			r = parkedRead{ok: true, err: errClose}
		}
	}()
	if err := c.awaitReadable(); err != nil {
		return parkedRead{ok: true, err: err}
	}
	n, err := c.nc.Read(c.small[:])
	return parkedRead{ok: true, n: n, err: err}
}

// awaitReadable waits, on a TLS connection, until its socket has bytes to
// read (or is closed), on the socket itself: the parked goroutine then
// waits a few hundred bytes deep, not under crypto/tls's record layer,
// whose frames would grow its stack. It is right only after a read
// through TLS timed out, as before every park: crypto/tls reads the socket
// only when it holds no decrypted input and no whole record, so nothing
// can be read before more bytes arrive. The read deadline (wake-ups,
// shutdown, the idle timer) ends the wait as it ends a read; other
// errors are left to the read through TLS that follows.
func (c *conn) awaitReadable() error {
	if !c.isTLS || c.compress != nil || c.tcp == nil {
		return nil
	}
	rc, err := c.tcp.SyscallConn()
	if err != nil {
		return nil
	}
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN
	})
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return nil
}

// takeResumed returns the parked read's result, once.
func (c *conn) takeResumed() (int, error) {
	r := c.resumed
	c.resumed = parkedRead{}
	return r.n, r.err
}

// readDeadlineFor is the read deadline for a wait until deadline: at most
// parkAfter from now when this goroutine ran a command (then parking gives
// back what its stack grew to), else deadline itself.
func (c *conn) readDeadlineFor(deadline time.Time) time.Time {
	if !c.worked {
		return deadline
	}
	return earlier(deadline, time.Now().Add(parkAfter))
}

// parkNow reports whether a read that failed with err ended at parkAfter
// (not at deadline, a change signal or shutdown): then the read deadline
// is set back to deadline for the parked read.
func (c *conn) parkNow(err error, deadline time.Time) bool {
	var ne net.Error
	if !c.worked || !errors.As(err, &ne) || !ne.Timeout() || c.woken.Load() || c.shuttingDown() || !time.Now().Before(deadline) {
		return false
	}
	c.nc.SetReadDeadline(deadline)
	// A signal or shutdown that raced with setting the deadline: the
	// caller handles it as if the read had ended for it.
	return !c.woken.Load() && !c.shuttingDown()
}

// waitInputOrPark waits for the client's next command until deadline, as
// waitInput does, and returns errPark when the connection should park.
func (c *conn) waitInputOrPark(deadline time.Time) error {
	// No wake-up is installed on this path: a flag left by IDLE or NOTIFY
	// must not make parkNow take parkAfter for a wake-up.
	c.woken.Store(false)
	if !c.worked || c.inputBuffered() {
		// Nothing to give back, or nothing to wait for.
		c.setWaitDeadline(deadline)
		return c.waitInput()
	}
	c.setWaitDeadline(earlier(deadline, time.Now().Add(parkAfter)))
	err := c.waitInput()
	if err == nil {
		// The rest of the command (its line, its literals) is read under
		// the idle timer, not parkAfter.
		c.nc.SetReadDeadline(deadline)
		return nil
	}
	if !c.parkNow(err, deadline) {
		return err
	}
	if err := c.release(); err != nil {
		return err
	}
	return errPark
}

// setWaitDeadline sets the read deadline of a wait for the client, or
// ends the wait at once when a shutdown came first: Shutdown moves the
// deadline of a waiting connection to now, which this setting may have
// overwritten.
func (c *conn) setWaitDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	if c.shuttingDown() {
		c.nc.SetReadDeadline(time.Now())
	}
}

// resumeInput ends waitInput with the read a parked connection waited on.
func (c *conn) resumeInput() error {
	return c.gotInput(c.takeResumed())
}
