package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/sorted"
	"github.com/tern-imap/tern/internal/store"
)

// selected is a session's view of its selected mailbox: the UID list
// (message sequence numbers are positions in it) and what the client has
// been told.
type selected struct {
	info store.MailboxInfo // Name as the session calls it (acl.go: view)
	// acct holds the mailbox: the session's own account, or its owner's
	// for a shared mailbox; owner is its user, rights the session user's
	// rights on it when it was selected (acl.go).
	acct     store.Account
	owner    string
	name     string // in the owner's account
	rights   string // read again before each command (recheckRights)
	readOnly bool
	examined bool     // EXAMINE: read-only whatever the rights
	uids     []uint32 // ascending; seq = index+1
	shared   bool     // uids may be the mailbox index's array: copy before removing (removeUIDs)
	recent   []uint32 // ascending UIDs that are \Recent for this session
	// claimed is the range of UIDs, first and last, whose \Recent this
	// session's own APPENDs claimed (store.NewMessage.ClaimRecent): they
	// are \Recent for it when they show up. Zero when none is pending.
	claimed  [2]uint32
	modSeq   uint64 // highest modseq this session has seen
	maxUID   uint32 // highest UID this session has seen (UIDNEXT-1 at select)
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
	// contexts are the RFC 5267 RETURN (UPDATE) results (context.go).
	contexts []*searchContext
	// keySeq is the latest URLAUTH key reset told (urlauth.go keyResets).
	keySeq uint64
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

// viewCursor maps ascending UIDs to sequence numbers and \Recent by
// walking the view once, instead of a binary search per message.
type viewCursor struct {
	sel       *selected
	i, recent int
}

func (s *selected) cursor() viewCursor { return viewCursor{sel: s} }

// seq returns uid's sequence number; uids must be asked in ascending order.
func (vc *viewCursor) seq(uid uint32) (uint32, bool) {
	i, ok := sorted.Seek(vc.sel.uids, vc.i, uid)
	vc.i = i
	return uint32(i + 1), ok
}

// isRecent reports whether uid is \Recent; ascending order too.
func (vc *viewCursor) isRecent(uid uint32) bool {
	i, ok := sorted.Seek(vc.sel.recent, vc.recent, uid)
	vc.recent = i
	return ok
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
		c.setState(stateAuth)
	}
}

// mailboxName converts a wire mailbox name to the internal UTF-8 form.
func (c *conn) mailboxName(raw string) (string, error) {
	name := raw
	if !c.utf8 {
		dec, err := imap.DecodeMUTF7(raw)
		switch {
		case err == nil:
			name = dec
		case hasHighBit(raw) && utf8.ValidString(raw):
			// Raw UTF-8 can never be modified UTF-7: a client that sends
			// it (go-imap does, to any IMAP4rev2 server) means UTF-8.
		case c.cmd != nil && (c.cmd.Name == "CREATE" || c.cmd.Name == "RENAME"):
			return "", no("CANNOT", "Mailbox name is not valid modified UTF-7")
		default:
			// Such a mailbox cannot exist: answer NO, as for any missing one.
			return "", no("NONEXISTENT", "Mailbox name is not valid modified UTF-7")
		}
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
		return no("HASCHILDREN", "Mailbox has inferior hierarchical names")
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
	if args.CondStore {
		c.condstore = true
	}
	if args.QResync != nil && !c.qresync {
		// RFC 7162 wants ENABLE QRESYNC first; clients such as eM Client
		// send the parameter without it, so accept it and enable QRESYNC.
		c.qresync = true
		c.condstore = true
	}
	if c.sel != nil {
		c.closeSelected()
		if c.rev2 || c.qresync {
			c.w.WriteString("* OK [CLOSED] Previous mailbox closed\r\n")
		}
	}
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	m, info, err := c.resolveExisting(ctx, name)
	if err != nil {
		return storeErr(err, name)
	}
	if err := m.need("r"); err != nil {
		return err
	}
	if info.NoSelect {
		return no("CANNOT", "Mailbox is not selectable")
	}
	sub := c.srv.cfg.Notify.Subscribe(m.owner, info.ID)
	st, uids, err := m.acct.Snapshot(ctx, info.ID)
	if err != nil {
		sub.Close()
		return storeErr(err, name)
	}
	st.Name = m.view
	sel := &selected{
		info:     st.MailboxInfo,
		acct:     m.acct,
		owner:    m.owner,
		name:     m.name,
		rights:   m.rights,
		examined: cmd.Name == "EXAMINE",
		readOnly: cmd.Name == "EXAMINE" || !writable(m.rights),
		uids:     uids,
		shared:   true,
		modSeq:   st.HighestModSeq,
		maxUID:   st.UIDNext - 1,
		keywords: st.Keywords,
		keySeq:   c.srv.keyResets.now(),
		sub:      sub,
	}
	switch {
	case !sel.readOnly && len(uids) > 0:
		from, err := m.acct.ClaimRecent(ctx, info.ID, uids[len(uids)-1])
		if err != nil {
			sub.Close()
			return storeErr(err, name)
		}
		i, _ := slices.BinarySearch(uids, from)
		sel.recent = slices.Clone(uids[i:])
	case sel.readOnly && st.Recent > 0 && int(st.Recent) <= len(uids):
		// EXAMINE shows \Recent without claiming it: the unclaimed
		// messages are the newest ones.
		sel.recent = slices.Clone(uids[len(uids)-int(st.Recent):])
	}
	c.sel = sel
	c.setState(stateSelected)

	c.writeFlags()
	c.w.WriteString("* ")
	c.w.Number(uint64(len(uids)))
	c.w.WriteString(" EXISTS\r\n")
	if !c.rev2 {
		c.w.WriteString("* ")
		c.w.Number(uint64(len(sel.recent)))
		c.w.WriteString(" RECENT\r\n")
		if st.FirstUnseen != 0 && !c.uidOnly { // UNSEEN is a sequence number
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
		c.writePermanentFlags()
	}
	c.w.WriteString("* OK [UIDVALIDITY ")
	c.w.Number32(st.UIDValidity)
	c.w.WriteString("] UIDs valid\r\n* OK [UIDNEXT ")
	c.w.Number32(st.UIDNext)
	c.w.WriteString("] Predicted next UID\r\n* OK [HIGHESTMODSEQ ")
	c.w.Number(st.HighestModSeq)
	c.w.WriteString("] Highest\r\n* OK [MAILBOXID (")
	c.w.WriteString(mailboxID(&st.MailboxInfo))
	c.w.WriteString(")] Ok\r\n")
	c.w.WriteString(urlmechSelect)
	if c.rev2 {
		// RFC 9051 §6.3.2: the LIST response's attributes must be accurate.
		c.w.WriteString("* LIST (")
		c.w.WriteString(c.selectedAttrs(ctx, m, &st.MailboxInfo))
		c.w.WriteString(") \"/\" ")
		c.w.AString(c.wireName(st.Name))
		c.w.CRLF()
	}
	if q := args.QResync; q != nil && q.UIDValidity == st.UIDValidity {
		if err := c.qresyncSelect(ctx, q); err != nil {
			return err
		}
	}
	code := "READ-WRITE"
	if sel.readOnly {
		code = "READ-ONLY"
	}
	c.tagged("OK", code, cmd.Name+" completed")
	return errOKSent
}

// writePermanentFlags writes the PERMANENTFLAGS of a writable selection:
// the flags the session's rights let it change (RFC 4314 §5.1.1).
func (c *conn) writePermanentFlags() {
	c.w.WriteString("* OK [PERMANENTFLAGS (")
	var flags []string
	for _, f := range systemFlags {
		if c.sel.mayStore(f) {
			flags = append(flags, f)
		}
	}
	if c.sel.mayStore("$keyword") {
		flags = append(flags, c.sel.keywords...)
		flags = append(flags, `\*`)
	}
	c.w.WriteString(strings.Join(flags, " "))
	c.w.WriteString(")] Flags permitted\r\n")
}

// mayStore reports whether the session's rights let it set or clear flag
// (RFC 4314 §4): \Seen needs "s", \Deleted "t", any other flag "w".
func (s *selected) mayStore(flag string) bool {
	return strings.IndexByte(s.rights, flagRight(flag)) >= 0
}

// flagRight is the right needed to change flag.
func flagRight(flag string) byte {
	switch {
	case strings.EqualFold(flag, `\Seen`):
		return 's'
	case strings.EqualFold(flag, `\Deleted`):
		return 't'
	}
	return 'w'
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
	// Without "e" CLOSE just closes (RFC 4314 §4).
	if cmd.Name == "CLOSE" && !sel.readOnly && strings.Contains(sel.rights, "e") {
		if _, err := sel.acct.Expunge(ctx, sel.info.ID, nil, true); err != nil {
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
		before := sel.maxUID
		cs, err := sel.acct.Changes(ctx, sel.info.ID, sel.modSeq, sel.maxUID)
		if err != nil {
			if errors.Is(err, store.ErrNoSuchMailbox) {
				// Deleted under us (by another session): end the session's
				// view of it the only way the protocol allows.
				c.w.WriteString("* BYE Selected mailbox was deleted\r\n")
				c.flush()
				return errLogout
			}
			return fmt.Errorf("changes in %q: %w", sel.info.Name, err)
		}
		c.applyChanges(ctx, &cs)
		// NOTIFY MessageNew FETCH attributes (notify.go).
		if err := c.notifyFetchNew(ctx, before); err != nil {
			return err
		}
	}
	if expungeOK && len(sel.pendingExpunge) > 0 {
		c.reportExpunges(sel.pendingExpunge)
		sel.pendingExpunge = sel.pendingExpunge[:0]
	}
	c.tellKeyReset()
	return c.refreshContexts(ctx)
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
		c.writeFlagsFetch(seq, m, c.notifyWantsUID()) // NOTIFY FlagChange carries UID
	}
	if len(cs.New) > 0 {
		for _, m := range cs.New {
			if m.UID > sel.maxUID {
				sel.uids = append(sel.uids, m.UID)
				sel.maxUID = m.UID
			}
		}
		if !sel.readOnly {
			from, err := sel.acct.ClaimRecent(ctx, sel.info.ID, sel.maxUID)
			if err != nil {
				c.log.Warn("claim recent", "err", err)
				from = math.MaxUint32
			}
			for _, m := range cs.New {
				if m.UID >= from || (m.UID >= sel.claimed[0] && m.UID <= sel.claimed[1]) {
					sel.recent = append(sel.recent, m.UID)
				}
			}
			if sel.claimed[1] <= sel.maxUID {
				sel.claimed = [2]uint32{}
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

// noteClaimed records that the session's APPEND claimed the \Recent of
// UIDs first..last (store.AppendResult.RecentFrom). A range still pending
// is extended only when the new one follows it: UIDs between two claims
// may be another session's.
func (s *selected) noteClaimed(first, last uint32) {
	if s.claimed[1] > s.maxUID && s.claimed[1]+1 == first {
		s.claimed[1] = last
		return
	}
	s.claimed = [2]uint32{first, last}
}

// writeFlagsFetch writes "* seq FETCH (FLAGS (...))" for a changed message,
// with UID when asked or when CONDSTORE is on (RFC 7162 §3.2.4) and MODSEQ
// when CONDSTORE is on (§3.1.4). withFlags false leaves FLAGS out (a
// .SILENT STORE under CONDSTORE still reports the new MODSEQ).
func (c *conn) writeFlagsFetch(seq uint32, m *store.MessageMeta, withUID bool) {
	c.writeChangeFetch(seq, m, withUID, true)
}

func (c *conn) writeChangeFetch(seq uint32, m *store.MessageMeta, withUID, withFlags bool) {
	if withFlags {
		c.announceKeywords(m.Flags)
	}
	c.writeFetchHead(seq, m.UID)
	sep := ""
	if (withUID || c.condstore) && !c.uidOnly {
		c.w.WriteString("UID ")
		c.w.Number32(m.UID)
		sep = " "
	}
	if withFlags {
		c.w.WriteString(sep + "FLAGS ")
		c.writeMsgFlags(m.UID, m.Flags)
		sep = " "
	}
	if c.condstore {
		c.w.WriteString(sep + "MODSEQ (")
		c.w.Number(m.ModSeq)
		c.w.WriteByte(')')
	}
	c.w.WriteString(")\r\n")
}

// announceKeywords sends an untagged FLAGS first if flags holds a keyword
// this session was not yet told of (another session added it to the
// mailbox since). FLAGS lists the flags applicable in the mailbox (RFC
// 9051 §7.3.5); clients such as imaptest reject a FETCH whose keyword it
// did not list.
func (c *conn) announceKeywords(flags []string) {
	sel := c.sel
	var kws []string
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) || slices.Contains(sel.keywords, f) || slices.Contains(kws, f) {
			continue
		}
		if kws == nil {
			kws = slices.Clone(sel.keywords) // may be the index's shared list
		}
		kws = append(kws, f)
	}
	if kws == nil {
		return
	}
	// The store's order (by folded name), so the next sync's keyword list
	// compares equal and is not announced twice.
	slices.SortFunc(kws, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	sel.keywords = kws
	c.writeFlags()
}

// selectedAttrs is the LIST attribute list of a selectable mailbox.
func (c *conn) selectedAttrs(ctx context.Context, m *mailboxRef, info *store.MailboxInfo) string {
	children := false
	prefix := m.name + store.Separator
	if m.own(c) {
		if boxes, err := c.acct.Mailboxes(ctx); err == nil {
			for _, b := range boxes {
				if strings.HasPrefix(b.Name, prefix) {
					children = true
					break
				}
			}
		}
	} else if boxes, err := m.acct.SharedMailboxes(ctx, []string{c.user, store.Anyone}); err == nil {
		// Only children the user may list count (RFC 4314 §4).
		for _, b := range boxes {
			if strings.HasPrefix(b.Name, prefix) && strings.Contains(store.RightsOf(b.ACL, c.user), "l") {
				children = true
				break
			}
		}
	}
	attrs := `\HasNoChildren`
	if children {
		attrs = `\HasChildren`
	}
	if info.SpecialUse != "" {
		attrs += " " + info.SpecialUse
	}
	return attrs
}

// mailboxID is the RFC 8474 MAILBOXID: stable across RENAME, never reused.
func mailboxID(m *store.MailboxInfo) string { return m.ObjectID() }

// qresyncSelect sends what changed since the client's last sync
// (RFC 7162 §3.2.5): VANISHED (EARLIER) for expunged UIDs it may know, then
// FETCH for messages changed since its modseq.
func (c *conn) qresyncSelect(ctx context.Context, q *imap.QResyncParams) error {
	sel := c.sel
	gone, err := sel.acct.Vanished(ctx, sel.info.ID, q.ModSeq)
	if err != nil {
		return fmt.Errorf("qresync %q: %w", sel.info.Name, err)
	}
	if q.KnownUIDs != nil {
		known := *q.KnownUIDs
		gone = slices.DeleteFunc(gone, func(u uint32) bool { return !known.Contains(u, sel.maxUID) })
	}
	if len(gone) > 0 {
		c.w.WriteString("* VANISHED (EARLIER) ")
		c.w.WriteString(imap.SetFromNums(gone).String())
		c.w.CRLF()
	}
	cs, err := sel.acct.Changes(ctx, sel.info.ID, q.ModSeq, sel.maxUID)
	if err != nil {
		return fmt.Errorf("qresync %q: %w", sel.info.Name, err)
	}
	for i := range cs.Changed {
		m := &cs.Changed[i]
		if seq, ok := sel.seqOf(m.UID); ok {
			c.writeChangeFetch(seq, m, true, true)
		}
	}
	return nil
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
// response is correct at the moment it is read. Under QRESYNC one VANISHED
// response names them all (RFC 7162 §3.2.10).
func (c *conn) reportExpunges(uids []uint32) {
	sel := c.sel
	c.contextsExpunged(uids)
	if c.qresync || c.uidOnly { // RFC 9586: UIDONLY reports expunges as VANISHED
		var gone []uint32
		for _, uid := range uids {
			if _, ok := slices.BinarySearch(sel.uids, uid); ok {
				gone = append(gone, uid)
			}
		}
		if len(gone) == 0 {
			return
		}
		c.w.WriteString("* VANISHED ")
		c.w.WriteString(imap.SetFromNums(gone).String())
		c.w.CRLF()
		sel.removeUIDs(gone)
		return
	}
	var gone []uint32
	for i := len(uids) - 1; i >= 0; i-- {
		idx, ok := slices.BinarySearch(sel.uids, uids[i])
		if !ok {
			continue
		}
		// Descending order: the numbers below idx do not shift.
		c.w.WriteString("* ")
		c.w.Number(uint64(idx + 1))
		c.w.WriteString(" EXPUNGE\r\n")
		gone = append(gone, uids[i])
	}
	slices.Reverse(gone)
	sel.removeUIDs(gone)
}

// removeUIDs takes the expunged UIDs gone (ascending) out of the view.
// The UID list from the snapshot may be the mailbox index's own array,
// shared with other sessions (shared): it is copied before its first
// change in place. (Appending needs no copy: Snapshot clips it.)
func (sel *selected) removeUIDs(gone []uint32) {
	if sel.shared {
		sel.uids = slices.Clone(sel.uids)
		sel.shared = false
	}
	sel.uids = sorted.Remove(sel.uids, gone)
	sel.recent = sorted.Remove(sel.recent, gone)
	sel.saved = sorted.Remove(sel.saved, gone)
}

func hasHighBit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

func isNoMailbox(err error) bool { return errors.Is(err, store.ErrNoSuchMailbox) }
