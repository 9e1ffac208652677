package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// cmdReplace implements REPLACE and UID REPLACE (RFC 8508): APPEND the
// new message to the named mailbox, then expunge the replaced one from
// the selected mailbox, as one command. The store has no transaction
// spanning both, so the order makes it safe: a failed append leaves the
// original untouched, and a failed expunge takes the appended copy out
// again before answering NO.
//
// The responses follow the RFC's examples: an untagged OK with APPENDUID,
// then (at the end of the command, with the other pending updates) EXISTS
// when the target is the selected mailbox and EXPUNGE (VANISHED under
// QRESYNC or UIDONLY) for the replaced message; under CONDSTORE the tagged
// OK carries HIGHESTMODSEQ.
func cmdReplace(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.ReplaceArgs)
	sel := c.sel
	if sel.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	if !strings.Contains(sel.rights, "t") || !strings.Contains(sel.rights, "e") {
		return no("NOPERM", "Permission denied")
	}
	uid, err := c.replacedUID(args.Num, cmd.UID)
	if err != nil {
		return err
	}
	m, err := c.appendTarget(ctx, args.Mailbox, args.Message.Parts != nil)
	if err != nil {
		return err
	}
	msg, err := c.newMessage(ctx, &args.Message)
	if err != nil {
		return err
	}
	msg.Flags = m.allowedFlags(msg.Flags)
	res, err := m.acct.Append(ctx, m.name, []store.NewMessage{msg})
	if err != nil {
		return appendErr(err, m.view)
	}
	gone, err := sel.acct.Expunge(ctx, sel.info.ID, []uint32{uid}, false)
	if err != nil || len(gone) == 0 {
		c.undoAppend(ctx, m.acct, &res)
		if err != nil {
			return fmt.Errorf("replace: expunge UID %d in %q: %w", uid, sel.info.Name, err)
		}
		return no("EXPUNGEISSUED", "The message to replace has been expunged")
	}
	if code := m.uidCode(fmt.Sprintf("APPENDUID %d %s", res.UIDValidity, imap.SetFromNums(res.UIDs).String())); code != "" {
		c.w.WriteString("* OK [" + code + "] Replacement Message ready\r\n")
	}
	// The new message (if it went to the selected mailbox) and the
	// expunge are reported by the sync at the end of the command.
	sel.dirty = true
	if !c.condstore {
		return nil
	}
	return c.okHighestModSeq(ctx, cmdName(cmd)+" completed")
}

// okHighestModSeq finishes a command that expunged under CONDSTORE: the
// pending updates first, then "tag OK [HIGHESTMODSEQ n]" with the modseq
// they brought the session to (RFC 7162 §3.2.10 via RFC 8508 §3.4).
func (c *conn) okHighestModSeq(ctx context.Context, text string) error {
	err := c.syncAfter(ctx, c.cmd)
	if err != nil && !errors.Is(err, errLogout) {
		return err
	}
	code := ""
	if c.sel != nil {
		code = fmt.Sprintf("HIGHESTMODSEQ %d", c.sel.modSeq)
	}
	c.tagged("OK", code, text)
	if err != nil {
		return err
	}
	return errOKSent
}

// replacedUID resolves REPLACE's message number (a UID under UID
// REPLACE; 0 is "*") to the UID of a message in view. A sequence number
// outside the view is BAD, as for any command; a UID not in view is NO.
func (c *conn) replacedUID(num uint32, uidMode bool) (uint32, error) {
	set := imap.NumSet{Ranges: []imap.NumRange{{Start: num, Stop: num}}}
	uids, err := c.resolveSet(set, uidMode)
	if err != nil {
		return 0, err
	}
	if len(uids) != 1 {
		return 0, no("NONEXISTENT", "No such message to replace")
	}
	return uids[0], nil
}

// undoAppend takes out what a REPLACE appended when the original could not
// be expunged; failing that, it logs (the client then has both copies,
// which loses nothing).
func (c *conn) undoAppend(ctx context.Context, acct store.Account, res *store.AppendResult) {
	if _, err := acct.Expunge(ctx, res.MailboxID, res.UIDs, false); err != nil {
		c.log.Error("replace: could not undo the append", "mailbox_id", res.MailboxID, "uids", res.UIDs, "err", err)
	}
}
