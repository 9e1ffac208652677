package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/store"
)

// selected is a session's view of its selected mailbox: the UID list
// (message sequence numbers are positions in it) and what the client has
// been told.
type selected struct {
	info     store.MailboxInfo
	readOnly bool
	uids     []uint32 // ascending; seq = index+1
	recent   []uint32 // ascending UIDs that are \Recent for this session
	modSeq   uint64   // highest modseq this session has seen
	maxUID   uint32   // highest UID this session has seen (UIDNEXT-1 at select)
	keywords []string
	sub      *notify.Subscription
	saved    []uint32 // SEARCHRES saved UIDs ($), ascending
	// pendingExpunge holds UIDs expunged by others that could not yet be
	// reported (during FETCH/STORE/SEARCH). They stay in uids until then.
	pendingExpunge []uint32
	dirty          bool // a change signal arrived or our own write happened
	// own records flag changes this session already reported (UID ->
	// modseq), so they are not echoed back when the change signal returns.
	own map[uint32]uint64
}

// noteOwnChange records a flag change already reported to the client.
func (c *conn) noteOwnChange(uid uint32, modSeq uint64) {
	if c.sel.own == nil {
		c.sel.own = make(map[uint32]uint64)
	}
	c.sel.own[uid] = modSeq
}

func (s *selected) seqOf(uid uint32) (uint32, bool) {
	i, ok := slices.BinarySearch(s.uids, uid)
	return uint32(i + 1), ok
}

func (s *selected) isRecent(uid uint32) bool {
	_, ok := slices.BinarySearch(s.recent, uid)
	return ok
}

// systemFlags are always permanent.
var systemFlags = []string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`}

func (c *conn) closeSelected() {
	if c.sel == nil {
		return
	}
	c.sel.sub.Close()
	c.sel = nil
	if c.state == stateSelected {
		c.state = stateAuth
	}
}

// mailboxName converts a wire mailbox name to the internal UTF-8 form.
func (c *conn) mailboxName(raw string) (string, error) {
	name := raw
	if !c.utf8 {
		dec, err := imap.DecodeMUTF7(raw)
		if err != nil {
			return "", bad("", "Mailbox name is not valid modified UTF-7")
		}
		name = dec
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	if len(name) > 5 && strings.EqualFold(name[:6], "INBOX/") {
		name = "INBOX" + name[5:]
	}
	return name, nil
}

// wireName converts an internal mailbox name to what this client reads.
func (c *conn) wireName(name string) string {
	if c.utf8 {
		return name
	}
	return imap.EncodeMUTF7(name)
}

// storeErr maps a storage error to a tagged response.
func storeErr(err error, name string) error {
	switch {
	case errors.Is(err, store.ErrNoSuchMailbox):
		return no("NONEXISTENT", "Mailbox does not exist")
	case errors.Is(err, store.ErrMailboxExists):
		return no("ALREADYEXISTS", "Mailbox already exists")
	case errors.Is(err, store.ErrInvalidName):
		return no("CANNOT", "Invalid mailbox name")
	case errors.Is(err, store.ErrNotAllowed):
		return no("CANNOT", "Operation not allowed on this mailbox")
	case errors.Is(err, store.ErrHasChildren):
		return no("INUSE", "Mailbox has inferior hierarchical names")
	case errors.Is(err, store.ErrNoSelect):
		return no("CANNOT", "Mailbox is not selectable")
	case errors.Is(err, store.ErrOverQuota):
		return no("OVERQUOTA", "Quota exceeded")
	}
	if name != "" {
		return fmt.Errorf("mailbox %q: %w", name, err)
	}
	return err
}

func cmdSelect(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.SelectArgs)
	if c.sel != nil {
		c.closeSelected()
		if c.rev2 {
			c.w.WriteString("* OK [CLOSED] Previous mailbox closed\r\n")
		}
	}
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	info, err := c.acct.Mailbox(ctx, name)
	if err != nil {
		return storeErr(err, name)
	}
	if info.NoSelect {
		return no("CANNOT", "Mailbox is not selectable")
	}
	sub := c.srv.cfg.Notify.Subscribe(c.user, info.ID)
	st, uids, err := c.acct.Snapshot(ctx, info.ID)
	if err != nil {
		sub.Close()
		return storeErr(err, name)
	}
	sel := &selected{
		info:     st.MailboxInfo,
		readOnly: cmd.Name == "EXAMINE",
		uids:     uids,
		modSeq:   st.HighestModSeq,
		maxUID:   st.UIDNext - 1,
		keywords: st.Keywords,
		sub:      sub,
	}
	if !sel.readOnly && len(uids) > 0 {
		from, err := c.acct.ClaimRecent(ctx, info.ID, uids[len(uids)-1])
		if err != nil {
			sub.Close()
			return storeErr(err, name)
		}
		i, _ := slices.BinarySearch(uids, from)
		sel.recent = slices.Clone(uids[i:])
	}
	c.sel = sel
	c.state = stateSelected

	c.writeFlags()
	c.w.WriteString("* ")
	c.w.Number(uint64(len(uids)))
	c.w.WriteString(" EXISTS\r\n")
	if !c.rev2 {
		c.w.WriteString("* ")
		c.w.Number(uint64(len(sel.recent)))
		c.w.WriteString(" RECENT\r\n")
		if st.FirstUnseen != 0 {
			if seq, ok := sel.seqOf(st.FirstUnseen); ok {
				c.w.WriteString("* OK [UNSEEN ")
				c.w.Number32(seq)
				c.w.WriteString("] First unseen\r\n")
			}
		}
	}
	if sel.readOnly {
		c.w.WriteString("* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n")
	} else {
		c.w.WriteString("* OK [PERMANENTFLAGS (")
		for _, f := range systemFlags {
			c.w.WriteString(f)
			c.w.SP()
		}
		for _, k := range sel.keywords {
			c.w.WriteString(k)
			c.w.SP()
		}
		c.w.WriteString(`\*)] Flags permitted` + "\r\n")
	}
	c.w.WriteString("* OK [UIDVALIDITY ")
	c.w.Number32(st.UIDValidity)
	c.w.WriteString("] UIDs valid\r\n* OK [UIDNEXT ")
	c.w.Number32(st.UIDNext)
	c.w.WriteString("] Predicted next UID\r\n")
	if c.rev2 {
		c.w.WriteString("* LIST () \"/\" ")
		c.w.AString(c.wireName(st.Name))
		c.w.CRLF()
	}
	code := "READ-WRITE"
	if sel.readOnly {
		code = "READ-ONLY"
	}
	c.tagged("OK", code, cmd.Name+" completed")
	return errOKSent
}

func (c *conn) writeFlags() {
	c.w.WriteString("* FLAGS (")
	for i, f := range systemFlags {
		if i > 0 {
			c.w.SP()
		}
		c.w.WriteString(f)
	}
	for _, k := range c.sel.keywords {
		c.w.SP()
		c.w.WriteString(k)
	}
	c.w.WriteString(")\r\n")
}

// cmdClose handles CLOSE (expunge silently, then deselect) and UNSELECT.
func cmdClose(ctx context.Context, c *conn, cmd *imap.Command) error {
	sel := c.sel
	if cmd.Name == "CLOSE" && !sel.readOnly {
		if _, err := c.acct.Expunge(ctx, sel.info.ID, nil, true); err != nil {
			return fmt.Errorf("close %q: %w", sel.info.Name, err)
		}
	}
	c.closeSelected()
	c.tagged("OK", "", cmd.Name+" completed")
	return errOKSent
}

// sync reports what changed in the selected mailbox since the client last
// heard: new messages (EXISTS, RECENT), flag changes (FETCH) and, when
// allowed, expunges (EXPUNGE).
func (c *conn) sync(ctx context.Context, expungeOK bool) error {
	sel := c.sel
	if sel == nil {
		return nil
	}
	select {
	case <-sel.sub.C:
		sel.dirty = true
	default:
	}
	if sel.dirty {
		sel.dirty = false
		cs, err := c.acct.Changes(ctx, sel.info.ID, sel.modSeq, sel.maxUID)
		if err != nil {
			if errors.Is(err, store.ErrNoSuchMailbox) {
				// Deleted under us (by another session): end the session's
				// view of it the only way the protocol allows.
				c.w.WriteString("* BYE Selected mailbox was deleted\r\n")
				c.bw.Flush()
				return errLogout
			}
			return fmt.Errorf("changes in %q: %w", sel.info.Name, err)
		}
		c.applyChanges(ctx, &cs)
	}
	if expungeOK && len(sel.pendingExpunge) > 0 {
		c.reportExpunges(sel.pendingExpunge)
		sel.pendingExpunge = sel.pendingExpunge[:0]
	}
	return nil
}

func (c *conn) applyChanges(ctx context.Context, cs *store.ChangeSet) {
	sel := c.sel
	if !slices.Equal(cs.Keywords, sel.keywords) && len(cs.Keywords) >= len(sel.keywords) {
		sel.keywords = cs.Keywords
		c.writeFlags()
	}
	// Expunges are queued: they are reported only where allowed.
	for _, uid := range cs.Expunged {
		if _, ok := slices.BinarySearch(sel.uids, uid); ok {
			if _, dup := slices.BinarySearch(sel.pendingExpunge, uid); !dup {
				sel.pendingExpunge = append(sel.pendingExpunge, uid)
			}
		}
	}
	slices.Sort(sel.pendingExpunge)
	// Flag changes of messages still in view.
	for i := range cs.Changed {
		m := &cs.Changed[i]
		seq, ok := sel.seqOf(m.UID)
		if !ok {
			continue
		}
		if _, gone := slices.BinarySearch(sel.pendingExpunge, m.UID); gone {
			continue
		}
		if ms, ok := sel.own[m.UID]; ok && ms == m.ModSeq {
			continue
		}
		c.writeFlagsFetch(seq, m, false)
	}
	if len(cs.New) > 0 {
		for _, m := range cs.New {
			if m.UID > sel.maxUID {
				sel.uids = append(sel.uids, m.UID)
				sel.maxUID = m.UID
			}
		}
		if !sel.readOnly {
			if from, err := c.acct.ClaimRecent(ctx, sel.info.ID, sel.maxUID); err == nil {
				for _, m := range cs.New {
					if m.UID >= from {
						sel.recent = append(sel.recent, m.UID)
					}
				}
			} else {
				c.log.Warn("claim recent", "err", err)
			}
		}
		c.w.WriteString("* ")
		c.w.Number(uint64(len(sel.uids)))
		c.w.WriteString(" EXISTS\r\n")
		if !c.rev2 {
			c.w.WriteString("* ")
			c.w.Number(uint64(len(sel.recent)))
			c.w.WriteString(" RECENT\r\n")
		}
	}
	if cs.UIDNext > 0 && cs.UIDNext-1 > sel.maxUID {
		sel.maxUID = cs.UIDNext - 1
	}
	if cs.HighestModSeq > sel.modSeq {
		sel.modSeq = cs.HighestModSeq
	}
	clear(sel.own)
}

// writeFlagsFetch writes "* seq FETCH (FLAGS (...))" for a changed message.
func (c *conn) writeFlagsFetch(seq uint32, m *store.MessageMeta, withUID bool) {
	c.w.WriteString("* ")
	c.w.Number32(seq)
	c.w.WriteString(" FETCH (")
	if withUID {
		c.w.WriteString("UID ")
		c.w.Number32(m.UID)
		c.w.SP()
	}
	c.w.WriteString("FLAGS ")
	c.writeMsgFlags(m.UID, m.Flags)
	c.w.WriteString(")\r\n")
}

// writeMsgFlags writes a message's flag list, adding \Recent for rev1.
func (c *conn) writeMsgFlags(uid uint32, flags []string) {
	c.w.WriteByte('(')
	for i, f := range flags {
		if i > 0 {
			c.w.SP()
		}
		c.w.WriteString(f)
	}
	if !c.rev2 && c.sel.isRecent(uid) {
		if len(flags) > 0 {
			c.w.SP()
		}
		c.w.WriteString(`\Recent`)
	}
	c.w.WriteByte(')')
}

// reportExpunges sends EXPUNGE for each UID (ascending input) and removes it
// from the view. Sequence numbers are computed from the highest down so each
// response is correct at the moment it is read.
func (c *conn) reportExpunges(uids []uint32) {
	sel := c.sel
	for i := len(uids) - 1; i >= 0; i-- {
		uid := uids[i]
		idx, ok := slices.BinarySearch(sel.uids, uid)
		if !ok {
			continue
		}
		c.w.WriteString("* ")
		c.w.Number(uint64(idx + 1))
		c.w.WriteString(" EXPUNGE\r\n")
		sel.uids = slices.Delete(sel.uids, idx, idx+1)
		if j, ok := slices.BinarySearch(sel.recent, uid); ok {
			sel.recent = slices.Delete(sel.recent, j, j+1)
		}
		if j, ok := slices.BinarySearch(sel.saved, uid); ok {
			sel.saved = slices.Delete(sel.saved, j, j+1)
		}
	}
}

func isNoMailbox(err error) bool { return errors.Is(err, store.ErrNoSuchMailbox) }
