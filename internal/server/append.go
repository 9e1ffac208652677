package server

import (
	"context"
	"fmt"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

func cmdAppend(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.AppendArgs)
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	info, err := c.acct.Mailbox(ctx, name)
	if err != nil {
		if isNoMailbox(err) {
			return no("TRYCREATE", "Mailbox does not exist")
		}
		return storeErr(err, name)
	}
	if info.NoSelect {
		return no("CANNOT", "Mailbox is not selectable")
	}
	msgs := make([]store.NewMessage, 0, len(args.Messages))
	for _, m := range args.Messages {
		if m.Parts != nil {
			if m.Literal, err = c.catenate(ctx, m.Parts); err != nil {
				return err
			}
		}
		if len(m.Literal) == 0 {
			return no("CANNOT", "Empty message")
		}
		if int64(len(m.Literal)) > c.srv.cfg.MaxLiteralSize {
			return no("TOOBIG", "Message exceeds APPENDLIMIT")
		}
		flags, err := checkFlags(m.Flags)
		if err != nil {
			return err
		}
		msgs = append(msgs, store.NewMessage{Body: m.Literal, Flags: flags, InternalDate: m.Date})
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
