package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// appendTarget resolves the mailbox APPEND or REPLACE stores into: a
// missing one (or one the session cannot see) is NO [TRYCREATE] (RFC
// 9051 §6.3.12); appending needs the "i" right (RFC 4314 §4). A mailbox
// of the session's own user is not looked up here: the store's Append
// finds it in its own transaction and says whether it is missing or
// \Noselect (appendErr answers those as this would), which saves a
// database round trip per APPEND on a shared store. With CATENATE
// (catenate true) it is looked up all the same: a missing mailbox is
// TRYCREATE before any URL is resolved.
func (c *conn) appendTarget(ctx context.Context, raw string, catenate bool) (*mailboxRef, error) {
	name, err := c.mailboxName(raw)
	if err != nil {
		return nil, err
	}
	if _, _, shared := splitShared(name); !shared && !catenate {
		return c.resolveSeen(ctx, name, visible)
	}
	m, info, err := c.resolveDest(ctx, name)
	if err != nil {
		return nil, appendErr(err, name)
	}
	if err := m.need("i"); err != nil {
		return nil, err
	}
	if info.NoSelect {
		return nil, appendErr(store.ErrNoSelect, name)
	}
	return m, nil
}

// appendErr answers a failed APPEND or REPLACE into the mailbox the
// client named: a missing one is NO [TRYCREATE], a \Noselect one NO
// [CANNOT], anything else as storeErr.
func appendErr(err error, name string) error {
	switch {
	case isNoMailbox(err):
		return no("TRYCREATE", "Mailbox does not exist")
	case errors.Is(err, store.ErrNoSelect):
		return no("CANNOT", "Mailbox is not selectable")
	}
	return storeErr(err, name)
}

// allowedFlags drops the flags m's rights do not let the session set:
// APPEND stores the message without them (RFC 4314 §4).
func (m *mailboxRef) allowedFlags(flags []string) []string {
	out := flags[:0:0]
	for _, f := range flags {
		if m.has(flagRight(f)) {
			out = append(out, f)
		}
	}
	return out
}

// newMessage checks one APPEND/REPLACE message and builds what the store
// takes: CATENATE parts joined, size against APPENDLIMIT, flags checked.
func (c *conn) newMessage(ctx context.Context, m *imap.AppendMessage) (store.NewMessage, error) {
	body := m.Literal
	if m.Parts != nil {
		var err error
		if body, err = c.catenate(ctx, m.Parts); err != nil {
			return store.NewMessage{}, err
		}
	}
	if len(body) == 0 {
		return store.NewMessage{}, no("CANNOT", "Empty message")
	}
	if int64(len(body)) > c.srv.cfg.MaxLiteralSize {
		return store.NewMessage{}, no("TOOBIG", "Message exceeds APPENDLIMIT")
	}
	flags, err := checkFlags(m.Flags)
	if err != nil {
		return store.NewMessage{}, err
	}
	return store.NewMessage{Body: body, Flags: flags, InternalDate: m.Date}, nil
}

func cmdAppend(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.AppendArgs)
	catenate := false
	for i := range args.Messages {
		catenate = catenate || args.Messages[i].Parts != nil
	}
	m, err := c.appendTarget(ctx, args.Mailbox, catenate)
	if err != nil {
		return err
	}
	msgs := make([]store.NewMessage, 0, len(args.Messages))
	for i := range args.Messages {
		nm, err := c.newMessage(ctx, &args.Messages[i])
		if err != nil {
			return err
		}
		nm.Flags = m.allowedFlags(nm.Flags)
		msgs = append(msgs, nm)
	}
	// Into the mailbox selected read-write: the session will announce the
	// new messages itself, and claims their \Recent in the Append's own
	// transaction instead of a write of its own when it does.
	if s := c.sel; s != nil && !s.readOnly && s.owner == m.owner && s.info.Name == m.name && len(msgs) > 0 {
		msgs[0].ClaimRecent = true
	}
	res, err := m.acct.Append(ctx, m.name, msgs)
	if err != nil {
		return appendErr(err, m.view)
	}
	if c.isSelected(m.owner, res.MailboxID) {
		c.sel.dirty = true
		if res.RecentFrom != 0 && len(res.UIDs) > 0 {
			c.sel.noteClaimed(res.RecentFrom, res.UIDs[len(res.UIDs)-1])
		}
	}
	c.runIMAPSieve(ctx, m, res.MailboxID, res.UIDs, "APPEND")
	code := fmt.Sprintf("APPENDUID %d %s", res.UIDValidity, imap.SetFromNums(res.UIDs).String())
	return c.okCode(ctx, m.uidCode(code), "APPEND completed")
}
