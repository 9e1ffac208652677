package server

import (
	"context"
	"fmt"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// appendTarget resolves the mailbox APPEND or REPLACE stores into: a
// missing one (or one the session cannot see) is NO [TRYCREATE] (RFC
// 9051 §6.3.12); appending needs the "i" right (RFC 4314 §4).
func (c *conn) appendTarget(ctx context.Context, raw string) (*mailboxRef, error) {
	name, err := c.mailboxName(raw)
	if err != nil {
		return nil, err
	}
	m, info, err := c.resolveExisting(ctx, name)
	if err != nil {
		if isNoMailbox(err) {
			return nil, no("TRYCREATE", "Mailbox does not exist")
		}
		return nil, storeErr(err, name)
	}
	if err := m.need("i"); err != nil {
		return nil, err
	}
	if info.NoSelect {
		return nil, no("CANNOT", "Mailbox is not selectable")
	}
	return m, nil
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
	m, err := c.appendTarget(ctx, args.Mailbox)
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
	res, err := m.acct.Append(ctx, m.name, msgs)
	if err != nil {
		return storeErr(err, m.view)
	}
	if c.isSelected(m.owner, res.MailboxID) {
		c.sel.dirty = true
	}
	c.runIMAPSieve(ctx, m, res.MailboxID, res.UIDs, "APPEND")
	code := fmt.Sprintf("APPENDUID %d %s", res.UIDValidity, imap.SetFromNums(res.UIDs).String())
	return c.okCode(ctx, code, "APPEND completed")
}
