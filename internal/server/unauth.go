package server

import (
	"context"
	"time"

	"github.com/tern-imap/tern/imap"
)

// cmdUnauthenticate implements UNAUTHENTICATE (RFC 8437): the session
// returns to the not-authenticated state as if the connection were new,
// except that TLS stays in place. The selected mailbox is closed without
// an expunge (as UNSELECT), the account, NOTIFY registration and SEARCH
// contexts are released, the user's connection slots are given back, and
// every extension turned on by ENABLE (or implicitly, like CONDSTORE) is
// turned off again, so a later login as another user starts clean.
func cmdUnauthenticate(ctx context.Context, c *conn, cmd *imap.Command) error {
	c.log.Info("unauthenticated") // still with the user
	c.resetAuthState()
	return c.okCode(ctx, "CAPABILITY "+c.capabilities(), "UNAUTHENTICATE completed")
}

// closeMailState closes what the logged-in session opened: the selected
// mailbox, NOTIFY, other users' accounts and its own.
func (c *conn) closeMailState() {
	c.closeSelected()
	c.stopNotify()
	c.closeOthers()
	if c.acct != nil {
		c.acct.Close()
		c.acct = nil
	}
}

// resetAuthState undoes everything a login and the commands after it set
// up on this connection.
func (c *conn) resetAuthState() {
	c.closeMailState()
	if c.countedUser != "" {
		c.srv.unloginConn(c)
	}
	c.user = ""
	c.log = c.baseLog
	c.rev2, c.utf8, c.condstore, c.qresync = false, false, false, false
	c.uidOnly = false
	c.w.UTF8 = false
	c.syncFailures, c.notifyFailures = 0, 0
	// The pre-login bounds start over: time allowed and commands counted.
	c.preAuthDeadline = time.Now().Add(c.srv.cfg.PreAuthTimeout)
	c.preAuthCmds = 0
	c.setState(stateNotAuth)
}
