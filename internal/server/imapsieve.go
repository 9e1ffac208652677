package server

import (
	"context"
	"strings"

	"github.com/tern-imap/tern/internal/store"
)

// IMAPSIEVE (RFC 6785): after APPEND, COPY and MOVE have stored the new
// messages, and before the tagged OK, the session hands them to
// Config.IMAPSieve, which runs the target mailbox's script (chosen by
// its /shared/imapsieve/script metadata). Flag changes by STORE and the
// \Seen a FETCH sets are the FLAG cause: when the selected mailbox has a
// script (HasScript), the session reads the flags before the change
// (from the mailbox index) and passes each message's changed flags. What
// a script changes (flags, \Deleted) reaches the client through the
// end-of-command sync like any other change; the script's own flag
// changes go to the store directly, so they never start another event
// (§2.2.3).

// IMAPSieve runs IMAPSIEVE scripts; delivery.Deliverer implements it
// through cmd/tern's adapter.
type IMAPSieve interface {
	// MessagesAdded is called with the owner's account of the mailbox
	// (name and id in that account) that got uids, the logged-in user,
	// the cause ("APPEND" or "COPY"; MOVE counts as COPY) and for COPY
	// the source mailbox (its name in its owner's account).
	MessagesAdded(ctx context.Context, acct store.Account, user, mailbox string, mailboxID int64, uids []uint32, cause, from string)
	// HasScript reports whether mailbox (named mailbox, id mailboxID in
	// acct) has a script to run. It is asked at every STORE and every
	// FETCH that sets \Seen, so it should answer from memory.
	HasScript(ctx context.Context, acct store.Account, mailbox string, mailboxID int64) bool
	// FlagsChanged is the FLAG cause: changed maps each message whose
	// flags changed to the flags that did.
	FlagsChanged(ctx context.Context, acct store.Account, user, mailbox string, mailboxID int64, changed map[uint32][]string)
	// Changed says that owner's metadata or mailboxes changed
	// (SETMETADATA, DELETE, RENAME), so what HasScript remembers about
	// them may be wrong.
	Changed(owner string)
}

// imapSieveChanged tells Config.IMAPSieve that acct's metadata or
// mailboxes changed.
func (c *conn) imapSieveChanged(acct store.Account) {
	if h := c.srv.cfg.IMAPSieve; h != nil {
		h.Changed(acct.User())
	}
}

// runIMAPSieve calls Config.IMAPSieve, if set, for messages this
// session added to m; a COPY comes from the selected mailbox.
func (c *conn) runIMAPSieve(ctx context.Context, m *mailboxRef, mailboxID int64, uids []uint32, cause string) {
	if c.srv.cfg.IMAPSieve == nil || len(uids) == 0 {
		return
	}
	from := ""
	if cause == "COPY" && c.sel != nil {
		from = c.selectedOwnName()
	}
	c.srv.cfg.IMAPSieve.MessagesAdded(ctx, m.acct, c.user, m.name, mailboxID, uids, cause, from)
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

// selectedOwnName is the selected mailbox's name in its owner's account.
func (c *conn) selectedOwnName() string {
	if _, local, ok := splitShared(c.sel.info.Name); ok && c.sel.owner != c.user {
		return local
	}
	return c.sel.info.Name
}

// flagsBefore returns the flags of uids in the selected mailbox before a
// flag change, or nil when no IMAPSIEVE script would see the change.
func (c *conn) flagsBefore(ctx context.Context, uids []uint32) map[uint32][]string {
	h := c.srv.cfg.IMAPSieve
	sel := c.sel
	if h == nil || len(uids) == 0 || !h.HasScript(ctx, sel.acct, c.selectedOwnName(), sel.info.ID) {
		return nil
	}
	before := make(map[uint32][]string, len(uids))
	err := sel.acct.Fetch(ctx, sel.info.ID, uids, store.WantFlags, func(m *store.Message) error {
		before[m.UID] = append([]string(nil), m.Flags...)
		return nil
	})
	if err != nil {
		c.log.Warn("imapsieve: flags before the change unreadable; no FLAG event", "err", err)
		return nil
	}
	return before
}

// runIMAPSieveFlags runs the FLAG cause for the messages of updated whose
// flags differ from before (flagsBefore).
func (c *conn) runIMAPSieveFlags(ctx context.Context, before map[uint32][]string, updated []store.MessageMeta) {
	if before == nil {
		return
	}
	changed := map[uint32][]string{}
	for i := range updated {
		m := &updated[i]
		old, ok := before[m.UID]
		if !ok {
			continue
		}
		if d := flagDiff(old, m.Flags); len(d) > 0 {
			changed[m.UID] = d
		}
	}
	if len(changed) == 0 {
		return
	}
	sel := c.sel
	c.srv.cfg.IMAPSieve.FlagsChanged(ctx, sel.acct, c.user, c.selectedOwnName(), sel.info.ID, changed)
	sel.dirty = true
}

// flagDiff lists the flags in exactly one of a and b (system flags
// compared case-insensitively; \Recent ignored), in a's then b's order.
func flagDiff(a, b []string) []string {
	key := func(f string) string {
		if strings.HasPrefix(f, `\`) {
			return strings.ToLower(f)
		}
		return f
	}
	in := func(l []string, f string) bool {
		for _, g := range l {
			if key(g) == key(f) {
				return true
			}
		}
		return false
	}
	var out []string
	for _, f := range a {
		if !in(b, f) && !strings.EqualFold(f, `\Recent`) {
			out = append(out, f)
		}
	}
	for _, f := range b {
		if !in(a, f) && !strings.EqualFold(f, `\Recent`) {
			out = append(out, f)
		}
	}
	return out
}
