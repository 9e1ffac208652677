package server

import (
	"context"

	"github.com/tern-imap/tern/internal/store"
)

// IMAPSIEVE (RFC 6785): after APPEND, COPY and MOVE have stored the new
// messages, and before the tagged OK, the session hands them to
// Config.IMAPSieve, which runs the target mailbox's script (chosen by
// its /shared/imapsieve/script metadata). What the script changes (flags,
// \Deleted) reaches the client through the end-of-command sync like any
// other change. Flag changes by STORE do not run scripts (the FLAG cause
// is not implemented).

// IMAPSieve runs IMAPSIEVE scripts; delivery.Deliverer implements it
// through cmd/tern's adapter.
type IMAPSieve interface {
	// MessagesAdded is called with the owner's account of the mailbox
	// (name and id in that account) that got uids, the logged-in user
	// and the cause ("APPEND" or "COPY"; MOVE counts as COPY).
	MessagesAdded(ctx context.Context, acct store.Account, user, mailbox string, mailboxID int64, uids []uint32, cause string)
}

// runIMAPSieve calls Config.IMAPSieve, if set, for messages this
// session added to m.
func (c *conn) runIMAPSieve(ctx context.Context, m *mailboxRef, mailboxID int64, uids []uint32, cause string) {
	if c.srv.cfg.IMAPSieve == nil || len(uids) == 0 {
		return
	}
	c.srv.cfg.IMAPSieve.MessagesAdded(ctx, m.acct, c.user, m.name, mailboxID, uids, cause)
	if c.isSelected(m.owner, mailboxID) {
		c.sel.dirty = true
	}
}

// imapSieveCapability is the IMAPSIEVE= capability (RFC 6785 §2.1) when
// scripts run and a ManageSieve URL is configured.
func (c *conn) imapSieveCapability() string {
	if c.srv.cfg.IMAPSieve == nil || c.srv.cfg.IMAPSieveURL == "" {
		return ""
	}
	return " IMAPSIEVE=" + c.srv.cfg.IMAPSieveURL
}
