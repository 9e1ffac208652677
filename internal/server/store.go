package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// checkFlags validates client-supplied flags: system flags must be known;
// \Recent cannot be set and is dropped. Keywords are atoms (the parser
// already checked their syntax).
func checkFlags(flags []string) ([]string, error) {
	out := flags[:0:0]
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) {
			out = append(out, f)
			continue
		}
		if strings.EqualFold(f, `\Recent`) {
			continue
		}
		ok := false
		for _, s := range systemFlags {
			if strings.EqualFold(s, f) {
				out = append(out, s)
				ok = true
				break
			}
		}
		if !ok {
			return nil, bad("", "Unknown system flag "+f)
		}
	}
	return out, nil
}

func cmdStore(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.StoreArgs)
	sel := c.sel
	if sel.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	flags, err := checkFlags(args.Flags)
	if err != nil {
		return err
	}
	if args.HasUnchangedSince {
		c.enableCondstore()
	}
	uids, err := c.resolveSet(args.Set, cmd.UID)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return nil
	}
	op := store.FlagsReplace
	switch args.Op {
	case imap.StoreAdd:
		op = store.FlagsAdd
	case imap.StoreRemove:
		op = store.FlagsRemove
	}
	if flags, err = sel.storableFlags(op, flags); err != nil {
		return err
	}
	before := c.flagsBefore(ctx, uids)
	res, err := sel.acct.StoreFlags(ctx, sel.info.ID, uids, op, flags, args.UnchangedSince, args.HasUnchangedSince)
	if err != nil {
		return fmt.Errorf("store in %q: %w", sel.info.Name, err)
	}
	if res.Keywords != nil {
		sel.keywords = res.Keywords
		c.writeFlags()
	}
	for i := range res.Updated {
		m := &res.Updated[i]
		c.noteOwnChange(m.UID, m.ModSeq)
		// .SILENT suppresses FLAGS, but under CONDSTORE the new MODSEQ is
		// still reported (RFC 7162 §3.1.3).
		if args.Silent && !c.condstore {
			continue
		}
		seq, ok := sel.seqOf(m.UID)
		if !ok {
			continue
		}
		c.writeChangeFetch(seq, m, cmd.UID, !args.Silent)
	}
	c.runIMAPSieveFlags(ctx, before, res.Updated)
	if len(res.Modified) > 0 {
		failed := res.Modified
		if !cmd.UID {
			failed = make([]uint32, 0, len(res.Modified))
			for _, u := range res.Modified {
				if seq, ok := sel.seqOf(u); ok {
					failed = append(failed, seq)
				}
			}
		}
		return c.okCode(ctx, "MODIFIED "+imap.SetFromNums(failed).String(), "Conditional STORE failed for some messages")
	}
	return nil
}

// storableFlags applies the rights to change flags (RFC 4314 §4) to a
// STORE: +FLAGS/-FLAGS drop the flags the session may not change and
// fail with NO [NOPERM] only when that leaves none of several; FLAGS
// (replacing every flag) needs all of "s", "w" and "t".
func (s *selected) storableFlags(op store.FlagOp, flags []string) ([]string, error) {
	denied := no("NOPERM", "Permission denied")
	if op == store.FlagsReplace {
		if !strings.Contains(s.rights, "s") || !strings.Contains(s.rights, "w") || !strings.Contains(s.rights, "t") {
			return nil, denied
		}
		return flags, nil
	}
	out := flags[:0:0]
	for _, f := range flags {
		if s.mayStore(f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 && len(flags) > 0 {
		return nil, denied
	}
	return out, nil
}

func cmdExpunge(ctx context.Context, c *conn, cmd *imap.Command) error {
	sel := c.sel
	if sel.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	if !strings.Contains(sel.rights, "e") {
		return no("NOPERM", "Permission denied")
	}
	var uids []uint32
	if cmd.UID {
		args := cmd.Args.(*imap.ExpungeArgs)
		var err error
		uids, err = c.resolveSet(args.Set, true)
		if err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
	}
	gone, err := sel.acct.Expunge(ctx, sel.info.ID, uids, true)
	if err != nil {
		return fmt.Errorf("expunge in %q: %w", sel.info.Name, err)
	}
	c.reportExpunges(gone)
	return nil
}

func cmdCopy(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.CopyArgs)
	sel := c.sel
	move := cmd.Name == "MOVE"
	if move && sel.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	dest, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	uids, err := c.resolveSet(args.Set, cmd.UID)
	if err != nil {
		return err
	}
	m, _, err := c.resolveExisting(ctx, dest)
	if err != nil {
		if isNoMailbox(err) {
			return no("TRYCREATE", "Destination mailbox does not exist")
		}
		return storeErr(err, dest)
	}
	if err := m.need("i"); err != nil {
		return err
	}
	if move && (!strings.Contains(sel.rights, "t") || !strings.Contains(sel.rights, "e")) {
		return no("NOPERM", "Permission denied")
	}
	if len(uids) == 0 {
		return nil
	}
	var res store.CopyResult
	switch {
	case m.acct != sel.acct || !strings.Contains(m.rights, "s") || !strings.Contains(m.rights, "w") || !strings.Contains(m.rights, "t"):
		// Another account, or flags the rights do not let through.
		res, err = c.copyAcross(ctx, uids, m, move)
	case move:
		res, err = sel.acct.Move(ctx, sel.info.ID, uids, m.name)
	default:
		res, err = sel.acct.Copy(ctx, sel.info.ID, uids, m.name)
	}
	if err != nil {
		return storeErr(err, dest)
	}
	c.runIMAPSieve(ctx, m, res.DestMailboxID, res.DestUIDs, "COPY")
	code := ""
	if len(res.DestUIDs) > 0 {
		code = fmt.Sprintf("COPYUID %d %s %s", res.DestUIDValidity,
			imap.SetFromNums(res.SrcUIDs).String(), imap.SetFromNums(res.DestUIDs).String())
	}
	if !move {
		return c.okCode(ctx, code, "COPY completed")
	}
	if code != "" {
		c.w.WriteString("* OK [" + code + "] Moved\r\n")
	}
	c.reportExpunges(res.SrcUIDs)
	return nil
}
