package server

import (
	"context"
	"fmt"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// appendTarget resolves the mailbox APPEND or REPLACE stores into: a
// missing one is NO [TRYCREATE] (RFC 9051 §6.3.12).
func (c *conn) appendTarget(ctx context.Context, raw string) (string, error) {
	name, err := c.mailboxName(raw)
	if err != nil {
		return "", err
	}
	info, err := c.acct.Mailbox(ctx, name)
	if err != nil {
		if isNoMailbox(err) {
			return "", no("TRYCREATE", "Mailbox does not exist")
		}
		return "", storeErr(err, name)
	}
	if info.NoSelect {
		return "", no("CANNOT", "Mailbox is not selectable")
	}
	return name, nil
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
	name, err := c.appendTarget(ctx, args.Mailbox)
	if err != nil {
		return err
	}
	msgs := make([]store.NewMessage, 0, len(args.Messages))
	for i := range args.Messages {
		nm, err := c.newMessage(ctx, &args.Messages[i])
		if err != nil {
			return err
		}
		msgs = append(msgs, nm)
	}
	res, err := c.acct.Append(ctx, name, msgs)
	if err != nil {
		return storeErr(err, name)
	}
	if c.sel != nil && c.sel.info.ID == res.MailboxID {
		c.sel.dirty = true
	}
	code := fmt.Sprintf("APPENDUID %d %s", res.UIDValidity, imap.SetFromNums(res.UIDs).String())
	return c.okCode(ctx, code, "APPEND completed")
}
