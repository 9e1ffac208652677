package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

var specialUses = []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`}

func canonicalSpecialUse(s string) (string, bool) {
	for _, u := range specialUses {
		if strings.EqualFold(u, s) {
			return u, true
		}
	}
	return "", false
}

func cmdCreate(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.CreateArgs)
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	name = strings.TrimSuffix(name, store.Separator)
	if name == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	use := ""
	switch len(args.SpecialUse) {
	case 0:
	case 1:
		u, ok := canonicalSpecialUse(args.SpecialUse[0])
		if !ok {
			return no("USEATTR", "Unsupported special-use attribute")
		}
		use = u
	default:
		return no("USEATTR", "Only one special-use attribute per mailbox")
	}
	acct, local, err := c.createTarget(ctx, name)
	if err != nil {
		return err
	}
	if err := acct.CreateMailbox(ctx, local, use); err != nil {
		return storeErr(err, name)
	}
	info, err := acct.Mailbox(ctx, local)
	if err != nil {
		return storeErr(err, name)
	}
	return c.okCode(ctx, "MAILBOXID ("+mailboxID(&info)+")", "CREATE completed")
}

func cmdDelete(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.MailboxArgs)
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return no("CANNOT", "INBOX cannot be deleted")
	}
	m, info, err := c.resolveExisting(ctx, name)
	if err != nil {
		return storeErr(err, name)
	}
	if err := m.need("x"); err != nil {
		return err
	}
	if m.name == "INBOX" {
		return no("CANNOT", "INBOX cannot be deleted")
	}
	if err := m.acct.DeleteMailbox(ctx, m.name); err != nil {
		return storeErr(err, name)
	}
	c.imapSieveChanged(m.acct)
	// Deleting the selected mailbox deselects it (RFC 9051 §6.3.2 wants
	// [CLOSED] when a selected mailbox is closed).
	if c.isSelected(m.owner, info.ID) {
		c.closeSelected()
		if c.rev2 || c.qresync {
			c.w.WriteString("* OK [CLOSED] Selected mailbox deleted\r\n")
		}
	}
	return nil
}

func cmdRename(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.RenameArgs)
	oldName, err := c.mailboxName(args.Old)
	if err != nil {
		return err
	}
	newName, err := c.mailboxName(args.New)
	if err != nil {
		return err
	}
	newName = strings.TrimSuffix(newName, store.Separator)
	if newName == "INBOX" {
		return no("ALREADYEXISTS", "INBOX already exists")
	}
	from, _, err := c.resolveExisting(ctx, oldName)
	if err != nil {
		return storeErr(err, oldName)
	}
	if err := from.need("x"); err != nil {
		return err
	}
	acct, to, err := c.createTarget(ctx, newName)
	if err != nil {
		return err
	}
	if acct != from.acct {
		return no("CANNOT", "Cannot move a mailbox to another user")
	}
	if err := acct.RenameMailbox(ctx, from.name, to); err != nil {
		return storeErr(err, oldName)
	}
	c.imapSieveChanged(acct)
	// Renaming INBOX moves its messages to a new mailbox; INBOX itself, and
	// so a selected INBOX, stays (RFC 9051 §6.3.6).
	if c.sel != nil && c.sel.owner == from.owner && from.name != "INBOX" {
		if c.sel.info.Name == oldName {
			c.sel.info.Name = newName
		} else if strings.HasPrefix(c.sel.info.Name, oldName+store.Separator) {
			c.sel.info.Name = newName + c.sel.info.Name[len(oldName):]
		}
	}
	return nil
}

func cmdSubscribe(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.MailboxArgs)
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	if name == "" {
		return no("CANNOT", "Invalid mailbox name")
	}
	sub := cmd.Name == "SUBSCRIBE"
	if sub {
		m, _, err := c.resolveExisting(ctx, name)
		if err != nil {
			return storeErr(err, name)
		}
		if err := m.need("l"); err != nil {
			return err
		}
	}
	if err := c.acct.SetSubscribed(ctx, name, sub); err != nil {
		return storeErr(err, name)
	}
	return nil
}

func cmdNamespace(ctx context.Context, c *conn, cmd *imap.Command) error {
	// Personal, other users ("Other Users/<owner>/..."), shared folders.
	c.w.WriteString(`* NAMESPACE (("" "/")) (("` + otherUsers + `/" "/")) (("` + sharedFolders + `/" "/"))` + "\r\n")
	return nil
}

// listEntry is one mailbox in a LIST/LSUB answer.
type listEntry struct {
	name       string
	rights     string // the session's rights (LIST-MYRIGHTS); "" for namespace levels
	exists     bool
	noSelect   bool
	subscribed bool
	specialUse string
	children   bool
	childSub   bool // has a subscribed descendant (RECURSIVEMATCH CHILDINFO)
}

func cmdList(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.ListArgs)
	var selSubscribed, selSpecial, recursive bool
	for _, o := range args.SelectOptions {
		switch o {
		case "SUBSCRIBED":
			selSubscribed = true
		case "SPECIAL-USE":
			selSpecial = true
		case "RECURSIVEMATCH":
			recursive = true
		case "REMOTE":
		default:
			return bad("", "Unknown LIST selection option")
		}
	}
	if recursive && !selSubscribed && !selSpecial {
		return bad("", "RECURSIVEMATCH needs another selection option")
	}
	var retSubscribed, retChildren, retStatus, retMyRights bool
	for _, o := range args.ReturnOptions {
		switch o {
		case "SUBSCRIBED":
			retSubscribed = true
		case "CHILDREN":
			retChildren = true
		case "SPECIAL-USE":
		case "STATUS":
			retStatus = true
		case "METADATA":
		case "MYRIGHTS": // RFC 8440
			retMyRights = true
		default:
			return bad("", "Unknown LIST return option")
		}
	}
	_ = retChildren // \HasChildren/\HasNoChildren are always sent (IMAP4rev2)
	mdEntries, err := listMetadataEntries(args.Metadata)
	if err != nil {
		return err
	}
	cmdWord := "LIST"
	if args.LSub {
		cmdWord = "LSUB"
		selSubscribed = true
	}

	ref, err := c.mailboxName(args.Reference)
	if err != nil {
		return err
	}
	if len(args.Patterns) == 1 && args.Patterns[0] == "" && !args.LSub && len(args.SelectOptions) == 0 {
		// LIST "" "": the hierarchy delimiter and root.
		c.w.WriteString(`* LIST (\Noselect) "/" ""` + "\r\n")
		return nil
	}
	var patterns []string
	for _, p := range args.Patterns {
		if !c.utf8 {
			// A pattern that is not valid modified UTF-7 can only match
			// names that are not either: use it as it is.
			if d, err := imap.DecodeMUTF7(p); err == nil {
				p = d
			}
		}
		if p == "" {
			continue
		}
		full := p
		if ref != "" && !strings.HasPrefix(p, store.Separator) {
			full = ref + p
		}
		patterns = append(patterns, full)
	}
	if len(patterns) == 0 {
		return nil
	}

	boxes, err := c.acct.Mailboxes(ctx)
	if err != nil {
		return fmt.Errorf("list mailboxes: %w", err)
	}
	// The subscriptions show only where selected or asked for (and LSUB):
	// a plain LIST, most clients' and the commonest, does not read them.
	var subs []string
	if selSubscribed || retSubscribed {
		if subs, err = c.acct.Subscriptions(ctx); err != nil {
			return fmt.Errorf("list subscriptions: %w", err)
		}
	}
	subSet := make(map[string]bool, len(subs))
	for _, s := range subs {
		subSet[s] = true
	}
	entries := make(map[string]*listEntry, len(boxes))
	var names []string
	for _, b := range boxes {
		if _, _, shared := splitShared(b.Name); shared {
			continue // hidden by the Other Users and Shared Folders namespaces
		}
		entries[b.Name] = &listEntry{name: b.Name, rights: ownerRights, exists: true, noSelect: b.NoSelect, subscribed: subSet[b.Name], specialUse: b.SpecialUse}
		names = append(names, b.Name)
	}
	if matchAnyPrefix(patterns, otherUsers) || matchAnyPrefix(patterns, sharedFolders) {
		shared, err := c.sharedMailboxes(ctx, "")
		if err != nil {
			return err
		}
		for _, b := range shared {
			if !strings.Contains(b.rights, "l") {
				continue // LIST needs "l" (RFC 4314 §4)
			}
			// The namespace levels: \Noselect parents.
			for _, p := range namespaceLevels(b.owner) {
				if entries[p] == nil {
					entries[p] = &listEntry{name: p, exists: true, noSelect: true, subscribed: subSet[p]}
					names = append(names, p)
				}
			}
			entries[b.info.Name] = &listEntry{name: b.info.Name, rights: b.rights, exists: true, noSelect: b.info.NoSelect,
				subscribed: subSet[b.info.Name], specialUse: b.info.SpecialUse}
			names = append(names, b.info.Name)
		}
	}
	for _, s := range subs {
		if _, ok := entries[s]; !ok {
			entries[s] = &listEntry{name: s, subscribed: true}
			names = append(names, s)
		}
	}
	// Children and subscribed descendants.
	for _, n := range names {
		e := entries[n]
		for p := parentName(n); p != ""; p = parentName(p) {
			pe := entries[p]
			if pe == nil {
				continue
			}
			if e.exists {
				pe.children = true
			}
			// CHILDINFO is for descendants the patterns do not list
			// themselves (RFC 5258 §4).
			if e.subscribed && !store.MatchMailbox(patterns, n) {
				pe.childSub = true
			}
		}
	}
	slices.SortFunc(names, compareMailboxNames)

	var out []*listEntry
	var childInfo = map[string]bool{}
	seen := map[string]bool{}
	for _, n := range names {
		e := entries[n]
		if !store.MatchMailbox(patterns, n) {
			continue
		}
		switch {
		case selSubscribed && !e.subscribed:
			if recursive && e.childSub {
				childInfo[n] = true
				out = append(out, e)
				seen[n] = true
			}
			continue
		case selSpecial && e.specialUse == "":
			continue
		case !selSubscribed && !e.exists:
			continue
		}
		out = append(out, e)
		seen[n] = true
	}
	// LSUB: a subscribed child hidden by "%" shows its parent as \Noselect.
	if args.LSub {
		for _, n := range names {
			e := entries[n]
			if !e.subscribed {
				continue
			}
			for p := parentName(n); p != ""; p = parentName(p) {
				if seen[p] || !store.MatchMailbox(patterns, p) {
					continue
				}
				pe := entries[p]
				if pe == nil {
					pe = &listEntry{name: p}
				}
				if !pe.subscribed {
					cp := *pe
					cp.noSelect = true
					cp.exists = false
					out = append(out, &cp)
					seen[p] = true
				}
			}
		}
		slices.SortFunc(out, func(a, b *listEntry) int { return compareMailboxNames(a.name, b.name) })
	}

	longest := 0 // the largest METADATA value MAXSIZE left out
	for _, e := range out {
		c.w.WriteString("* ")
		c.w.WriteString(cmdWord)
		c.w.WriteString(" (")
		var attrs []string
		if args.LSub {
			if e.noSelect {
				attrs = append(attrs, `\Noselect`)
			}
		} else {
			if !e.exists {
				attrs = append(attrs, `\NonExistent`)
			} else {
				if e.noSelect {
					attrs = append(attrs, `\Noselect`)
				}
				if e.children {
					attrs = append(attrs, `\HasChildren`)
				} else {
					attrs = append(attrs, `\HasNoChildren`)
				}
			}
			if e.subscribed && (selSubscribed || retSubscribed) {
				attrs = append(attrs, `\Subscribed`)
			}
			if e.specialUse != "" {
				attrs = append(attrs, e.specialUse)
			}
		}
		c.w.WriteString(strings.Join(attrs, " "))
		c.w.WriteString(`) "/" `)
		c.w.AString(c.wireName(e.name))
		if childInfo[e.name] {
			c.w.WriteString(` ("CHILDINFO" ("SUBSCRIBED"))`)
		}
		c.w.CRLF()
		if retMyRights && e.rights != "" {
			c.w.WriteString("* MYRIGHTS ")
			c.w.AString(c.wireName(e.name))
			c.w.SP()
			c.w.AString(wireRights(e.rights))
			c.w.CRLF()
		}
		if args.Metadata != nil && e.exists && !e.noSelect && e.rights != "" {
			n, err := c.listMetadata(ctx, e.name, mdEntries, args.Metadata)
			if err != nil {
				return err
			}
			longest = max(longest, n)
		}
		if retStatus && e.exists && !e.noSelect && strings.Contains(e.rights, "r") {
			if err := c.writeStatus(ctx, e.name, args.StatusItems); err != nil {
				var re *respError
				if !errors.As(err, &re) {
					return err
				}
			}
		}
	}
	return c.okLongEntries(ctx, longest, cmdWord+" completed")
}

// matchAnyPrefix reports whether some pattern may match a name that
// starts with prefix (the patterns' literal start agrees with it).
func matchAnyPrefix(patterns []string, prefix string) bool {
	for _, p := range patterns {
		lit := p
		if i := strings.IndexAny(p, "*%"); i >= 0 {
			lit = p[:i]
		}
		if strings.HasPrefix(prefix, lit) || strings.HasPrefix(lit, prefix) {
			return true
		}
	}
	return false
}

func parentName(n string) string {
	i := strings.LastIndex(n, store.Separator)
	if i < 0 {
		return ""
	}
	return n[:i]
}

// compareMailboxNames orders INBOX first, then by byte order.
func compareMailboxNames(a, b string) int {
	ai := a == "INBOX" || strings.HasPrefix(a, "INBOX/")
	bi := b == "INBOX" || strings.HasPrefix(b, "INBOX/")
	if ai != bi {
		if ai {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func cmdStatus(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.StatusArgs)
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	return c.writeStatus(ctx, name, args.Items)
}

func (c *conn) writeStatus(ctx context.Context, name string, items []string) error {
	m, err := c.resolve(ctx, name)
	if err != nil {
		return storeErr(err, name)
	}
	st, err := m.acct.Status(ctx, m.name)
	if err != nil {
		return storeErr(err, name)
	}
	if err := m.need("r"); err != nil {
		return err
	}
	if st.NoSelect {
		return no("CANNOT", "Mailbox is not selectable")
	}
	for _, it := range items {
		switch it {
		case "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "MAILBOXID", "APPENDLIMIT", "DELETED-STORAGE":
		case "HIGHESTMODSEQ":
			c.enableCondstore()
		default:
			return bad("", "Unknown STATUS item "+it)
		}
	}
	c.w.WriteString("* STATUS ")
	c.w.AString(c.wireName(m.view))
	c.w.WriteString(" (")
	for i, it := range items {
		if i > 0 {
			c.w.SP()
		}
		c.w.WriteString(it)
		c.w.SP()
		switch it {
		case "MESSAGES":
			c.w.Number32(st.Messages)
		case "UIDNEXT":
			c.w.Number32(st.UIDNext)
		case "UIDVALIDITY":
			c.w.Number32(st.UIDValidity)
		case "UNSEEN":
			c.w.Number32(st.Unseen)
		case "DELETED":
			c.w.Number32(st.Deleted)
		case "SIZE":
			c.w.Number(uint64(st.Size))
		case "RECENT":
			c.w.Number32(st.Recent)
		case "DELETED-STORAGE": // RFC 9208, in units of 1024 octets like STORAGE
			c.w.Number(uint64(kib(st.DeletedSize)))
		case "HIGHESTMODSEQ":
			c.w.Number(st.HighestModSeq)
		case "MAILBOXID":
			c.w.WriteByte('(')
			c.w.WriteString(mailboxID(&st.MailboxInfo))
			c.w.WriteByte(')')
		case "APPENDLIMIT":
			c.w.Number(uint64(c.srv.cfg.MaxLiteralSize))
		}
	}
	c.w.WriteString(")\r\n")
	return nil
}
