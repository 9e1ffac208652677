package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/privseen"
)

// Shared mailboxes and access control (RFC 4314 ACL, RFC 2342 NAMESPACE,
// RFC 8440 LIST-MYRIGHTS).
//
// A session reaches its own mailboxes by their names, another user's as
// "Other Users/<owner>/<name>" (otherUsers) and the shared folders as
// "Shared Folders/<name>" (sharedFolders). Rights live in the
// owner's store (store.Account.ACL); the owner has every right on their
// own mailboxes and cannot change that. A mailbox of another user on
// which the session's user has neither "l" nor "r" does not exist for the
// session: every command answers exactly as for a missing mailbox.
// Lacking another right on a mailbox the user can see is NO [NOPERM].
//
// \Seen is per user (RFC 4314 §5.2): another user's account is opened
// through privseen.Wrap, so every read and write of \Seen by the session
// is its own user's, kept beside the owner's messages, while the owner's
// \Seen stays the messages' flag. The other flags are shared.

const aclCapabilities = " ACL RIGHTS=texk LIST-MYRIGHTS"

// otherUsers is the "Other Users" namespace: the prefix of every name
// that leads to another user's mailboxes, followed by the owner's name.
const otherUsers = "Other Users"

// ownerRights are the rights an owner always has on their mailboxes.
const ownerRights = store.AllRights

// mailboxRef is a mailbox as a session reaches it: the account that holds
// it, its name there, the name the session calls it by, and the session
// user's rights on it.
type mailboxRef struct {
	acct   store.Account
	owner  string
	name   string // in the owner's account
	view   string // as the session names it
	rights string // canonical (store.NormRights)
}

func (m *mailboxRef) own(c *conn) bool { return m.owner == c.user }

func (m *mailboxRef) has(right byte) bool { return strings.IndexByte(m.rights, right) >= 0 }

// need returns NO [NOPERM] unless the session has every one of rights.
func (m *mailboxRef) need(rights string) error {
	for i := 0; i < len(rights); i++ {
		if !m.has(rights[i]) {
			return no("NOPERM", "Permission denied")
		}
	}
	return nil
}

// writable reports whether rights make a selected mailbox read-write
// (RFC 4314 §5.2: read-only without any of "i", "e" and the rights of
// the flags).
func writable(rights string) bool { return strings.ContainsAny(rights, "iestw") }

// recheckRights reads the session user's rights on the selected mailbox
// of another user again, before every command: a SETACL takes effect for
// a selected session at its next command (one ACL lookup; the session's
// own mailboxes need none). Losing "r" ends the session with BYE, as the
// mailbox's deletion does; becoming read-only or read-write is told with
// READ-ONLY/READ-WRITE and the new PERMANENTFLAGS (RFC 9051 §7.1).
func (c *conn) recheckRights(ctx context.Context, cmd *imap.Command) error {
	sel := c.sel
	if sel == nil || sel.owner == c.user {
		return nil
	}
	switch cmd.Name {
	case "SELECT", "EXAMINE", "UNSELECT", "LOGOUT":
		return nil // they leave the mailbox (CLOSE may expunge: it checks)
	}
	acl, err := sel.acct.ACL(ctx, sel.name)
	if isNoMailbox(err) {
		return nil // renamed (the session keeps it) or deleted (sync says so)
	}
	if err != nil {
		return fmt.Errorf("rights on %q: %w", sel.info.Name, err)
	}
	rights := store.RightsOf(acl, c.user)
	if rights == sel.rights {
		return nil
	}
	if !strings.Contains(rights, "r") {
		c.w.WriteString("* BYE Access to the selected mailbox was revoked\r\n")
		c.flush()
		return errLogout
	}
	wasReadOnly := sel.readOnly
	sel.rights = rights
	sel.readOnly = sel.examined || !writable(rights)
	switch {
	case sel.readOnly && !wasReadOnly:
		c.w.WriteString("* OK [READ-ONLY] Access rights changed\r\n")
		c.w.WriteString("* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n")
	case !sel.readOnly:
		if wasReadOnly {
			c.w.WriteString("* OK [READ-WRITE] Access rights changed\r\n")
		}
		c.writePermanentFlags()
	}
	return nil
}

// visible reports whether rights let a user know a mailbox exists.
func visible(rights string) bool { return strings.ContainsAny(rights, "lr") }

// sharedFolders is the "Shared Folders" namespace (RFC 2342): the
// mailboxes of store.SharedOwner, an account no one logs in to, named
// "Shared Folders/<name>". Their ACLs say who sees and uses them.
const sharedFolders = "Shared Folders"

// cutNamespace returns what follows prefix and its separator in name; ok
// is false for names outside the namespace.
func cutNamespace(name, prefix string) (rest string, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found || (rest != "" && !strings.HasPrefix(rest, store.Separator)) {
		return "", false
	}
	return strings.TrimPrefix(rest, store.Separator), true
}

// splitShared splits "Other Users/<owner>/<name>" into owner and name,
// and "Shared Folders/<name>" into store.SharedOwner and name; ok is
// false for names outside both namespaces. owner or name may be empty
// (the namespace levels themselves). The shared account is not reached
// through "Other Users".
func splitShared(name string) (owner, local string, ok bool) {
	if rest, ok := cutNamespace(name, sharedFolders); ok {
		return store.SharedOwner, rest, true
	}
	rest, ok := cutNamespace(name, otherUsers)
	if !ok {
		return "", "", false
	}
	owner, local, _ = strings.Cut(rest, store.Separator)
	if owner == store.SharedOwner {
		return "", "", true
	}
	return owner, local, true
}

// sharedView is the name a session gives owner's mailbox name.
func sharedView(owner, name string) string {
	if owner == store.SharedOwner {
		return sharedFolders + store.Separator + name
	}
	return otherUsers + store.Separator + owner + store.Separator + name
}

// namespaceLevels are the \Noselect names above owner's shared mailboxes
// in a LIST: "Other Users" and "Other Users/<owner>", or "Shared Folders".
func namespaceLevels(owner string) []string {
	if owner == store.SharedOwner {
		return []string{sharedFolders}
	}
	return []string{otherUsers, otherUsers + store.Separator + owner}
}

// errNoMailbox is what a session is told about a mailbox it cannot see.
var errNoMailbox = fmt.Errorf("not visible: %w", store.ErrNoSuchMailbox)

// resolve finds the mailbox a session calls name (internal form, from
// mailboxName). For another user's mailbox it reads the ACL; a mailbox
// the user may not see is store.ErrNoSuchMailbox, as if it did not
// exist. Existence of the mailbox itself is left to the caller.
func (c *conn) resolve(ctx context.Context, name string) (*mailboxRef, error) {
	return c.resolveSeen(ctx, name, visible)
}

// resolveSeen is resolve with seen deciding from the rights whether the
// user may know the mailbox exists.
func (c *conn) resolveSeen(ctx context.Context, name string, seen func(rights string) bool) (*mailboxRef, error) {
	owner, local, shared := splitShared(name)
	if !shared {
		return &mailboxRef{acct: c.acct, owner: c.user, name: name, view: name, rights: ownerRights}, nil
	}
	if owner == "" || local == "" || owner == c.user {
		return nil, errNoMailbox
	}
	acct, err := c.otherAccount(ctx, owner)
	if err != nil {
		return nil, err
	}
	if first, _, _ := strings.Cut(local, store.Separator); strings.EqualFold(first, "INBOX") {
		local = "INBOX" + local[len(first):] // INBOX is case-insensitive
	}
	acl, err := acct.ACL(ctx, local)
	if err != nil {
		return nil, err
	}
	rights := store.RightsOf(acl, c.user)
	if !seen(rights) {
		return nil, errNoMailbox
	}
	return &mailboxRef{acct: acct, owner: owner, name: local, view: sharedView(owner, local), rights: rights}, nil
}

// resolveExisting is resolve plus a lookup of the mailbox itself.
func (c *conn) resolveExisting(ctx context.Context, name string) (*mailboxRef, store.MailboxInfo, error) {
	return c.existing(ctx, name, visible)
}

// resolveDest is resolveExisting for the destination of APPEND, COPY,
// MOVE and REPLACE: "i" alone is enough to name it (a drop box, RFC 4314
// §4: a user may insert into a mailbox that does not appear in LIST and
// that every other command answers as missing).
func (c *conn) resolveDest(ctx context.Context, name string) (*mailboxRef, store.MailboxInfo, error) {
	return c.existing(ctx, name, func(rights string) bool { return strings.ContainsAny(rights, "lri") })
}

func (c *conn) existing(ctx context.Context, name string, seen func(rights string) bool) (*mailboxRef, store.MailboxInfo, error) {
	m, err := c.resolveSeen(ctx, name, seen)
	if err != nil {
		return nil, store.MailboxInfo{}, err
	}
	info, err := m.acct.Mailbox(ctx, m.name)
	if err != nil {
		return nil, store.MailboxInfo{}, err
	}
	return m, info, nil
}

// uidCode is code (APPENDUID, COPYUID) unless m is a drop box: without
// "r" the session learns nothing of the mailbox, not even its UIDs.
func (m *mailboxRef) uidCode(code string) string {
	if !m.has('r') {
		return ""
	}
	return code
}

// otherAccount opens (once per session) another user's account. An
// unknown user is store.ErrNoSuchMailbox: their mailboxes do not exist.
func (c *conn) otherAccount(ctx context.Context, owner string) (store.Account, error) {
	if a, ok := c.others[owner]; ok {
		return a, nil
	}
	a, err := c.srv.store.Account(ctx, owner)
	if errors.Is(err, store.ErrNoSuchUser) {
		return nil, errNoMailbox
	}
	if err != nil {
		return nil, fmt.Errorf("open account of %q: %w", owner, err)
	}
	if c.others == nil {
		c.others = make(map[string]store.Account)
	}
	a = privseen.Wrap(a, c.user)
	c.others[owner] = a
	return a, nil
}

// maxOtherAccounts bounds the other users' accounts a session keeps open
// between commands.
const maxOtherAccounts = 8

// trimOthers closes, before a command, the other users' accounts beyond
// maxOtherAccounts but the selected mailbox's: they reopen when needed
// (the store caches the databases). Between commands nothing else holds
// them.
func (c *conn) trimOthers() {
	if len(c.others) <= maxOtherAccounts {
		return
	}
	for name, o := range c.others {
		if c.sel == nil || c.sel.owner != name {
			o.Close()
			delete(c.others, name)
		}
	}
}

// closeOthers closes the other users' accounts the session opened.
func (c *conn) closeOthers() {
	for name, a := range c.others {
		a.Close()
		delete(c.others, name)
	}
}

// isSelected reports whether owner's mailbox id is the selected one.
func (c *conn) isSelected(owner string, id int64) bool {
	return c.sel != nil && c.sel.owner == owner && c.sel.info.ID == id
}

// wireRights spells rights for ACL, MYRIGHTS and LISTRIGHTS responses,
// with the virtual rights of RFC 4314 §2.1.1: "c" when "k" is granted,
// "d" when any of "x", "t", "e" is.
func wireRights(rights string) string {
	out := rights
	if strings.Contains(rights, "k") {
		out += "c"
	}
	if strings.ContainsAny(rights, "xte") {
		out += "d"
	}
	return out
}

// parseModRights parses SETACL's mod-rights (store.ParseModRights);
// an unknown right is BAD, as RFC 4314 §3.1 requires.
func parseModRights(s string) (store.FlagOp, string, error) {
	if strings.ContainsFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		return 0, "", bad("", "Uppercase rights are not allowed")
	}
	op, rights, err := store.ParseModRights(s)
	if err != nil {
		return 0, "", bad("", "Unsupported right: "+sanitize(err.Error()))
	}
	return op, rights, nil
}

// aclTarget resolves the mailbox of an ACL command and checks the
// session may administer it ("a").
func (c *conn) aclTarget(ctx context.Context, raw string) (*mailboxRef, error) {
	name, err := c.mailboxName(raw)
	if err != nil {
		return nil, err
	}
	m, _, err := c.resolveExisting(ctx, name)
	if err != nil {
		return nil, storeErr(err, name)
	}
	if err := m.need("a"); err != nil {
		return nil, err
	}
	return m, nil
}

// aclIdentifier checks an identifier of SETACL, DELETEACL, LISTRIGHTS.
func aclIdentifier(id string) error {
	if strings.HasPrefix(id, "-") {
		return no("CANNOT", "Negative rights are not supported")
	}
	if err := store.ValidIdentifier(id); err != nil {
		return bad("", "Invalid identifier")
	}
	return nil
}

func cmdSetACL(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.ACLArgs)
	op, rights := store.FlagsReplace, ""
	if cmd.Name == "SETACL" {
		var err error
		if op, rights, err = parseModRights(args.Rights); err != nil {
			return err
		}
	}
	if err := aclIdentifier(args.Identifier); err != nil {
		return err
	}
	m, err := c.aclTarget(ctx, args.Mailbox)
	if err != nil {
		return err
	}
	if args.Identifier == m.owner {
		return no("CANNOT", "The owner always has all rights")
	}
	if _, err := m.acct.SetACL(ctx, m.name, args.Identifier, op, rights); err != nil {
		return storeErr(err, m.view)
	}
	return nil
}

func cmdGetACL(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.ACLArgs)
	m, err := c.aclTarget(ctx, args.Mailbox)
	if err != nil {
		return err
	}
	acl, err := m.acct.ACL(ctx, m.name)
	if err != nil {
		return storeErr(err, m.view)
	}
	c.w.WriteString("* ACL ")
	c.w.AString(c.wireName(m.view))
	c.w.SP()
	c.w.AString(m.owner)
	c.w.SP()
	c.w.AString(wireRights(ownerRights))
	for _, e := range acl {
		c.w.SP()
		c.w.AString(e.Identifier)
		c.w.SP()
		c.w.AString(wireRights(e.Rights))
	}
	c.w.CRLF()
	return nil
}

func cmdListRights(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.ACLArgs)
	if err := aclIdentifier(args.Identifier); err != nil {
		return err
	}
	m, err := c.aclTarget(ctx, args.Mailbox)
	if err != nil {
		return err
	}
	c.w.WriteString("* LISTRIGHTS ")
	c.w.AString(c.wireName(m.view))
	c.w.SP()
	c.w.AString(args.Identifier)
	if args.Identifier == m.owner {
		c.w.SP()
		c.w.AString(wireRights(ownerRights))
	} else {
		// Nothing is granted always; every right alone, then the
		// virtual c and d.
		c.w.WriteString(` ""`)
		for _, r := range store.AllRights + "cd" {
			c.w.SP()
			c.w.WriteByte(byte(r))
		}
	}
	c.w.CRLF()
	return nil
}

func cmdMyRights(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.ACLArgs)
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	m, _, err := c.resolveExisting(ctx, name)
	if err != nil {
		return storeErr(err, name)
	}
	c.writeMyRights(m)
	return nil
}

// writeMyRights writes the MYRIGHTS response for m.
func (c *conn) writeMyRights(m *mailboxRef) {
	c.w.WriteString("* MYRIGHTS ")
	c.w.AString(c.wireName(m.view))
	c.w.SP()
	c.w.AString(wireRights(m.rights))
	c.w.CRLF()
}

// sharedBox is another user's mailbox the session can see.
type sharedBox struct {
	info   store.MailboxInfo // Name as the session calls it
	owner  string
	rights string
}

// sharedMailboxes lists the mailboxes other users shared with the
// session's user (or with anyone) that the user can see, sorted by
// session name; owner, if not "", limits them to that user's.
func (c *conn) sharedMailboxes(ctx context.Context, owner string) ([]sharedBox, error) {
	owners, err := c.srv.store.Sharers(ctx, c.user)
	if err != nil {
		return nil, fmt.Errorf("list sharers: %w", err)
	}
	var out []sharedBox
	for _, o := range owners {
		if owner != "" && o != owner {
			continue
		}
		boxes, err := c.sharedBy(ctx, o)
		if isNoMailbox(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		for _, b := range boxes {
			rights := store.RightsOf(b.ACL, c.user)
			if !visible(rights) {
				continue
			}
			info := b.MailboxInfo
			info.Name = sharedView(o, info.Name)
			out = append(out, sharedBox{info: info, owner: o, rights: rights})
		}
	}
	return out, nil
}

// sharedBy lists owner's mailboxes with entries for the session's user
// or anyone. An account the session has not opened yet is opened for the
// query only: a LIST must not keep every sharer's database open.
func (c *conn) sharedBy(ctx context.Context, owner string) ([]store.SharedMailbox, error) {
	acct, ok := c.others[owner]
	if !ok {
		a, err := c.srv.store.Account(ctx, owner)
		if errors.Is(err, store.ErrNoSuchUser) {
			return nil, errNoMailbox
		}
		if err != nil {
			return nil, fmt.Errorf("open account of %q: %w", owner, err)
		}
		defer a.Close()
		acct = a
	}
	boxes, err := acct.SharedMailboxes(ctx, []string{c.user, store.Anyone})
	if err != nil {
		return nil, fmt.Errorf("mailboxes shared by %q: %w", owner, err)
	}
	return boxes, nil
}

// seesMailboxOf reports whether owner shared a mailbox the session sees.
func (c *conn) seesMailboxOf(ctx context.Context, owner string) (bool, error) {
	boxes, err := c.sharedMailboxes(ctx, owner)
	return len(boxes) > 0, err
}

// createTarget returns the account a new mailbox name (CREATE, RENAME's
// new name) goes to and its name there. In another user's mailboxes the
// session needs "k" on the nearest existing superior mailbox; otherwise
// the answer is NO [NOPERM], whether or not the name exists.
func (c *conn) createTarget(ctx context.Context, name string) (store.Account, string, error) {
	owner, local, shared := splitShared(name)
	if !shared {
		return c.acct, name, nil
	}
	denied := no("NOPERM", "Permission denied")
	if owner == "" || local == "" || owner == c.user {
		return nil, "", denied
	}
	for p := parentName(name); ; p = parentName(p) {
		if _, l, _ := splitShared(p); l == "" {
			return nil, "", denied // no existing parent: only the owner creates at the top
		}
		m, _, err := c.resolveExisting(ctx, p)
		if isNoMailbox(err) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if !m.has('k') {
			return nil, "", denied
		}
		return m.acct, local, nil
	}
}

// Bounds on one Append batch of copyAcross.
const (
	copyBatchMessages = 64
	copyBatchBytes    = 8 << 20
)

// copyAcross copies (or moves) uids of the selected mailbox into m by
// reading them and appending them to m's account: for a mailbox of
// another account, or one where the session may not set every flag
// (RFC 4314 §4: flags without their right are dropped, the copy does not
// fail). Messages go in batches, each appended atomically; a MOVE
// expunges the originals once all are appended.
func (c *conn) copyAcross(ctx context.Context, uids []uint32, m *mailboxRef, move bool) (store.CopyResult, error) {
	sel := c.sel
	var metas []store.Message
	err := sel.acct.Fetch(ctx, sel.info.ID, uids, store.WantFlags|store.WantDates|store.WantSize, func(msg *store.Message) error {
		metas = append(metas, store.Message{UID: msg.UID, Flags: msg.Flags, InternalDate: msg.InternalDate, Size: msg.Size})
		return nil
	})
	if err != nil {
		return store.CopyResult{}, fmt.Errorf("copy from %q: %w", sel.info.Name, err)
	}
	var res store.CopyResult
	var batch []store.NewMessage
	var batchUIDs []uint32
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ar, err := m.acct.Append(ctx, m.name, batch)
		if err != nil {
			return err
		}
		res.DestMailboxID, res.DestUIDValidity = ar.MailboxID, ar.UIDValidity
		res.SrcUIDs = append(res.SrcUIDs, batchUIDs...)
		res.DestUIDs = append(res.DestUIDs, ar.UIDs...)
		batch, batchUIDs, size = nil, nil, 0
		return nil
	}
	// A failed COPY leaves the destination as it was (RFC 9051 §6.4.7):
	// take out what earlier batches appended.
	undo := func(err error) (store.CopyResult, error) {
		if len(res.DestUIDs) > 0 {
			if _, uerr := m.acct.Expunge(ctx, res.DestMailboxID, res.DestUIDs, false); uerr != nil {
				c.log.Error("copy: could not undo a partial copy", "mailbox", m.view, "uids", res.DestUIDs, "err", uerr)
			}
		}
		return store.CopyResult{}, err
	}
	for _, meta := range metas {
		body, err := c.readBody(ctx, meta.UID)
		if errors.Is(err, store.ErrNoSuchMessage) {
			continue // expunged meanwhile
		}
		if err != nil {
			return undo(err)
		}
		var flags []string
		for _, f := range meta.Flags {
			if strings.IndexByte(m.rights, flagRight(f)) >= 0 {
				flags = append(flags, f)
			}
		}
		batch = append(batch, store.NewMessage{Body: body, Flags: flags, InternalDate: meta.InternalDate})
		batchUIDs = append(batchUIDs, meta.UID)
		size += len(body)
		if len(batch) >= copyBatchMessages || size >= copyBatchBytes {
			if err := flush(); err != nil {
				return undo(err)
			}
		}
	}
	if err := flush(); err != nil {
		return undo(err)
	}
	if move && len(res.SrcUIDs) > 0 {
		if _, err := sel.acct.Expunge(ctx, sel.info.ID, res.SrcUIDs, false); err != nil {
			return res, fmt.Errorf("move from %q: %w", sel.info.Name, err)
		}
	}
	return res, nil
}

// readBody reads a message of the selected mailbox into memory.
func (c *conn) readBody(ctx context.Context, uid uint32) ([]byte, error) {
	b, err := c.sel.acct.OpenBody(ctx, c.sel.info.ID, uid)
	if err != nil {
		return nil, fmt.Errorf("open UID %d: %w", uid, err)
	}
	defer b.Close()
	buf := make([]byte, b.Size())
	if _, err := b.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read UID %d: %w", uid, err)
	}
	return buf, nil
}
