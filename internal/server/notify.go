package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/store"
)

// NOTIFY (RFC 5465): the client asks for events of the selected mailbox
// and of other mailboxes, delivered at any time the server may send
// untagged responses: during IDLE, at the end of commands and between
// commands. Events of non-selected mailboxes are STATUS responses (message
// events) and LIST responses (MailboxName, SubscriptionChange).
//
// A session with NOTIFY holds one notify.UserSubscription (no goroutine):
// while it waits for a command, a signal interrupts its read through the
// read deadline, as in IDLE (waitCommand). It remembers the status of each
// watched mailbox (a few words each) and, only when it asked for mailbox
// list events, the mailbox list.

// maxNotifyMailboxes bounds the mailboxes one session watches. NOTIFY SET
// asking for more is refused with NO [NOTIFICATIONOVERFLOW]; a watch set
// growing past it later turns NOTIFY off with OK [NOTIFICATIONOVERFLOW].
const maxNotifyMailboxes = 1000

// notifySupported lists the events this server reports (BADEVENT).
const notifySupported = "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange"

const (
	selNone      = iota // no message events for the selected mailbox
	selImmediate        // SELECTED
	selDelayed          // SELECTED-DELAYED: expunges wait for a command that allows them
)

type notifyState struct {
	sub *notify.UserSubscription

	selMode  int
	selFetch []imap.FetchItem // MessageNew FETCH attributes for the selected mailbox

	groups   []notifyGroup // filters other than SELECTED/SELECTED-DELAYED
	wantList bool          // some group asks for MailboxName or SubscriptionChange
	watched  map[int64]*watchedBox
	// others are the watched mailboxes of other users (Other Users,
	// Shared Folders), by owner and id; name is the session's name.
	others map[notify.Mailbox]*watchedBox
	// listed are the other users' mailboxes the user may list ("l"),
	// by session name, as last reported (only with wantList): for
	// MailboxName events when grants, revokes or the owners' renames
	// change them (RFC 5465 §5.4).
	listed map[string]sharedBox
	// The mailbox list as last reported (only with wantList).
	boxes map[int64]store.MailboxInfo
	subs  map[string]bool

	absorbed *imap.Command // the last own command whose changes were taken silently
}

type notifyGroup struct {
	filter      string   // INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES
	names       []string // SUBTREE/MAILBOXES, internal form
	msg         bool     // MessageNew + MessageExpunge
	flags       bool     // FlagChange
	mailboxName bool
	subChange   bool
}

// watchedBox is a non-selected mailbox with message events.
type watchedBox struct {
	name  string
	flags bool // FlagChange
	st    boxStatus
}

type boxStatus struct {
	messages, uidNext, uidValidity, unseen uint32
	modSeq                                 uint64
}

func statusOfInfo(st *store.MailboxStatus) boxStatus {
	return boxStatus{st.Messages, st.UIDNext, st.UIDValidity, st.Unseen, st.HighestModSeq}
}

// matches reports whether the group covers mailbox name.
func (g *notifyGroup) matches(name string, subs map[string]bool) bool {
	switch g.filter {
	case "INBOXES", "PERSONAL":
		// Every mailbox may receive mail (sieve fileinto, plus
		// addressing): INBOXES is PERSONAL (RFC 5465 §6.3).
		return true
	case "SUBSCRIBED":
		return subs[name]
	case "SUBTREE":
		for _, n := range g.names {
			if name == n || strings.HasPrefix(name, n+store.Separator) {
				return true
			}
		}
	case "MAILBOXES":
		return slices.Contains(g.names, name)
	}
	return false
}

func cmdNotify(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.NotifyArgs)
	if args.None {
		c.stopNotify()
		return nil
	}
	n := &notifyState{}
	unsupported := false
	selSeen := false
	for _, g := range args.Groups {
		has := map[string]bool{}
		var fetch []imap.FetchItem
		for _, ev := range g.Events {
			has[ev.Name] = true
			switch ev.Name {
			case "MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange":
			default:
				unsupported = true
			}
			if ev.Fetch != nil {
				fetch = ev.Fetch
			}
		}
		if has["MessageNew"] != has["MessageExpunge"] {
			return bad("", "MessageNew and MessageExpunge must be given together")
		}
		if (has["FlagChange"] || has["AnnotationChange"]) && !has["MessageNew"] {
			return bad("", "FlagChange and AnnotationChange need MessageNew and MessageExpunge")
		}
		if g.Filter == "SELECTED" || g.Filter == "SELECTED-DELAYED" {
			if selSeen {
				return bad("", "Only one of SELECTED and SELECTED-DELAYED may be given")
			}
			selSeen = true
			for _, ev := range g.Events {
				switch ev.Name {
				case "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange":
				default:
					return bad("", "Only message events may be given for the selected mailbox")
				}
			}
			if has["MessageNew"] {
				n.selMode = selImmediate
				if g.Filter == "SELECTED-DELAYED" {
					n.selMode = selDelayed
				}
				n.selFetch = fetch
			}
			continue
		}
		if fetch != nil {
			return bad("", "FETCH attributes are only for the selected mailbox")
		}
		ng := notifyGroup{filter: g.Filter, msg: has["MessageNew"], flags: has["FlagChange"],
			mailboxName: has["MailboxName"], subChange: has["SubscriptionChange"]}
		for _, raw := range g.Mailboxes {
			name, err := c.mailboxName(raw)
			if err != nil {
				continue // cannot exist: ignored (RFC 5465 §3.1)
			}
			ng.names = append(ng.names, strings.TrimSuffix(name, store.Separator))
		}
		n.wantList = n.wantList || ng.mailboxName || ng.subChange
		n.groups = append(n.groups, ng)
	}
	if unsupported {
		return no("BADEVENT ("+notifySupported+")", "Unsupported NOTIFY event")
	}
	for _, it := range n.selFetch {
		if it.Kind == imap.FetchModSeq {
			c.enableCondstore()
		}
	}
	c.stopNotify()
	// Subscribe before the snapshot: no change falls between them.
	n.sub = c.srv.cfg.Notify.SubscribeUser(c.user)
	boxes, subs, err := c.notifyLoadList(ctx)
	if err != nil {
		n.sub.Close()
		return err
	}
	if !n.rebuild(boxes, subs) {
		n.sub.Close()
		return no("NOTIFICATIONOVERFLOW", "Too many mailboxes to watch")
	}
	for id, w := range n.watched {
		st, err := c.acct.Status(ctx, w.name)
		if err != nil {
			if isNoMailbox(err) {
				delete(n.watched, id)
				continue
			}
			n.sub.Close()
			return fmt.Errorf("notify: status of %q: %w", w.name, err)
		}
		w.st = statusOfInfo(&st)
	}
	if ok, err := c.notifyWatchOthers(ctx, n, subs); err != nil || !ok {
		n.sub.Close()
		if err != nil {
			return err
		}
		return no("NOTIFICATIONOVERFLOW", "Too many mailboxes to watch")
	}
	if args.Status {
		// RFC 5465 §3.1: STATUS for every watched mailbox but the
		// selected one, before the tagged OK.
		for _, id := range n.watchedIDs() {
			if c.isSelected(c.user, id) {
				continue
			}
			w := n.watched[id]
			items := []string{"MESSAGES", "UIDNEXT", "UIDVALIDITY"}
			if w.flags {
				items = append(items, "HIGHESTMODSEQ")
			}
			c.writeBoxStatus(w.name, &w.st, items)
		}
		for _, w := range n.othersByName() {
			items := []string{"MESSAGES", "UIDNEXT", "UIDVALIDITY"}
			if w.flags {
				items = append(items, "HIGHESTMODSEQ")
			}
			c.writeBoxStatus(w.name, &w.st, items)
		}
	}
	c.notify = n
	return nil
}

// notifyWatchOthers watches, besides the user's own, the mailboxes of
// other users the user may read ("r") that a group with message events
// names: by SUBTREE or MAILBOXES under "Other Users/" or "Shared
// Folders/", or SUBSCRIBED (INBOXES and PERSONAL are the user's own).
// It is called at NOTIFY SET and again whenever what is shared with the
// user may have changed (notifySharedChanged): a mailbox watched before
// keeps its last status (its next change is told against it), one
// watched anew starts from its current status, one no longer readable is
// dropped. It also watches the mailbox lists of the mailboxes' owners
// and, with wantList, remembers the mailboxes the user may list. It
// reports false when too many would be watched.
func (c *conn) notifyWatchOthers(ctx context.Context, n *notifyState, subs map[string]bool) (bool, error) {
	var shared []sharedBox
	if n.wantsOthers() {
		var err error
		if shared, err = c.sharedMailboxes(ctx, ""); err != nil {
			return false, err
		}
	}
	others := make(map[notify.Mailbox]*watchedBox)
	var owners []string
	if n.wantList {
		n.listed = make(map[string]sharedBox)
	}
	for _, b := range shared {
		if !slices.Contains(owners, b.owner) {
			owners = append(owners, b.owner)
		}
		if n.wantList && strings.Contains(b.rights, "l") {
			n.listed[b.info.Name] = b
		}
		if b.info.NoSelect || !strings.Contains(b.rights, "r") {
			continue
		}
		var msg, flags bool
		for i := range n.groups {
			g := &n.groups[i]
			if g.msg && !g.personal() && g.matches(b.info.Name, subs) {
				msg = true
				flags = flags || g.flags
			}
		}
		if msg {
			k := notify.Mailbox{User: b.owner, ID: b.info.ID}
			w := &watchedBox{name: b.info.Name, flags: flags}
			if old := n.others[k]; old != nil && old.st.uidValidity == b.info.UIDValidity {
				w.st = old.st
			}
			others[k] = w
		}
	}
	if len(n.watched)+len(others) > maxNotifyMailboxes {
		return false, nil
	}
	keys := make([]notify.Mailbox, 0, len(others))
	for k, w := range others {
		if w.st.uidValidity == 0 {
			st, err := c.viewStatus(ctx, w.name)
			if isNoMailbox(err) {
				delete(others, k)
				continue
			}
			if err != nil {
				return false, fmt.Errorf("notify: status of %q: %w", w.name, err)
			}
			w.st = statusOfInfo(&st)
		}
		keys = append(keys, k)
	}
	n.others = others
	n.sub.Watch(keys)
	n.sub.WatchOwners(owners)
	return true, nil
}

// personal reports whether the group names only the user's own mailboxes.
func (g *notifyGroup) personal() bool { return g.filter == "INBOXES" || g.filter == "PERSONAL" }

// wantsOthers reports whether some group may name other users' mailboxes
// with message or mailbox name events.
func (n *notifyState) wantsOthers() bool {
	for i := range n.groups {
		if g := &n.groups[i]; (g.msg || g.mailboxName) && !g.personal() {
			return true
		}
	}
	return false
}

// notifySharedChanged follows a change of what other users share with
// the user (an ACL entry for the user or anyone, an owner's mailbox
// created, deleted or renamed): the watched mailboxes of other users are
// computed again (grants start their events, revokes stop them) and,
// unless absorb, the mailboxes the user may now list or no longer list
// are told as LIST responses where a MailboxName group names them.
func (c *conn) notifySharedChanged(ctx context.Context, absorb bool) error {
	n := c.notify
	_, subs, err := c.notifyLoadList(ctx)
	if err != nil {
		return err
	}
	before := n.listed
	ok, err := c.notifyWatchOthers(ctx, n, subs)
	if err != nil {
		return err
	}
	if !ok {
		c.notifyOverflow()
		return nil
	}
	if n.wantList && !absorb {
		c.notifySharedListEvents(before, n.listed, subs)
	}
	return nil
}

// notifyOverflow turns NOTIFY off when the watched mailboxes grew past
// maxNotifyMailboxes, and says so (RFC 5465 §3.1).
func (c *conn) notifyOverflow() {
	c.w.WriteString("* OK [NOTIFICATIONOVERFLOW] Too many mailboxes to watch; NOTIFY is off\r\n")
	c.stopNotify()
}

// notifySharedListEvents writes a LIST response for each other user's
// mailbox that appeared in or vanished from what the user may list,
// where a group with MailboxName names it (RFC 5465 §5.4): the new name
// with OLDNAME after the owner's rename, \NonExistent for one gone.
func (c *conn) notifySharedListEvents(before, after map[string]sharedBox, subs map[string]bool) {
	n := c.notify
	wants := func(name string) bool {
		for i := range n.groups {
			if g := &n.groups[i]; g.mailboxName && !g.personal() && g.matches(name, subs) {
				return true
			}
		}
		return false
	}
	oldName := make(map[notify.Mailbox]string, len(before))
	for name, b := range before {
		if _, still := after[name]; !still {
			oldName[notify.Mailbox{User: b.owner, ID: b.info.ID}] = name
		}
	}
	renamed := map[string]bool{}
	var names []string
	for name, b := range after {
		if _, was := before[name]; was {
			continue
		}
		if from, ok := oldName[notify.Mailbox{User: b.owner, ID: b.info.ID}]; ok {
			renamed[from] = true
			if wants(name) || wants(from) {
				c.writeSharedList(name, from, after, subs)
			}
			continue
		}
		names = append(names, name)
	}
	for name := range before {
		if _, still := after[name]; !still && !renamed[name] {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, compareMailboxNames)
	for _, name := range names {
		if wants(name) {
			c.writeSharedList(name, "", after, subs)
		}
	}
}

// writeSharedList writes the unsolicited LIST response for an other
// user's mailbox: its attributes from listed, \NonExistent when absent.
func (c *conn) writeSharedList(name, oldName string, listed map[string]sharedBox, subs map[string]bool) {
	byName := make(map[string]store.MailboxInfo, len(listed))
	for view, b := range listed {
		byName[view] = b.info
	}
	c.writeNotifyList(name, oldName, byName, subs)
}

// viewStatus is the status of the mailbox the session calls name, for a
// user who may read it ("r"); otherwise store.ErrNoSuchMailbox.
func (c *conn) viewStatus(ctx context.Context, name string) (store.MailboxStatus, error) {
	m, err := c.resolve(ctx, name)
	if err != nil {
		return store.MailboxStatus{}, err
	}
	if !m.has('r') {
		return store.MailboxStatus{}, errNoMailbox
	}
	return m.acct.Status(ctx, m.name)
}

// othersByName returns the watched mailboxes of other users by name.
func (n *notifyState) othersByName() []*watchedBox {
	out := make([]*watchedBox, 0, len(n.others))
	for _, w := range n.others {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *watchedBox) int { return compareMailboxNames(a.name, b.name) })
	return out
}

// notifyDeliverOthers sends STATUS for the watched mailboxes of other
// users that changed (as notifyDeliver for the user's own); one whose
// rights are gone, or which is gone, is no longer watched.
func (c *conn) notifyDeliverOthers(ctx context.Context, absorb bool) error {
	n := c.notify
	changed := n.sub.TakeOthers()
	slices.SortFunc(changed, func(a, b notify.Mailbox) int {
		wa, wb := n.others[a], n.others[b]
		if wa == nil || wb == nil {
			return 0
		}
		return compareMailboxNames(wa.name, wb.name)
	})
	for _, k := range changed {
		w := n.others[k]
		if w == nil || c.isSelected(k.User, k.ID) {
			continue
		}
		st, err := c.viewStatus(ctx, w.name)
		if isNoMailbox(err) {
			delete(n.others, k)
			continue
		}
		if err != nil {
			return fmt.Errorf("notify: status of %q: %w", w.name, err)
		}
		now := statusOfInfo(&st)
		if st.UIDValidity != w.st.uidValidity || st.ID != k.ID {
			delete(n.others, k) // another mailbox by that name now
			continue
		}
		if !absorb {
			c.notifyStatusChange(w, &now)
		}
		w.st = now
	}
	return nil
}

// stopNotify ends NOTIFY (NOTIFY NONE, a new NOTIFY SET, logout).
func (c *conn) stopNotify() {
	if c.notify != nil {
		c.notify.sub.Close()
		c.notify = nil
	}
}

// watchedIDs returns the watched mailboxes ordered by name.
func (n *notifyState) watchedIDs() []int64 {
	ids := make([]int64, 0, len(n.watched))
	for id := range n.watched {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int64) int { return compareMailboxNames(n.watched[a].name, n.watched[b].name) })
	return ids
}

func (c *conn) notifyLoadList(ctx context.Context) ([]store.MailboxInfo, map[string]bool, error) {
	boxes, err := c.acct.Mailboxes(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("notify: list mailboxes: %w", err)
	}
	list, err := c.acct.Subscriptions(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("notify: list subscriptions: %w", err)
	}
	subs := make(map[string]bool, len(list))
	for _, s := range list {
		subs[s] = true
	}
	return boxes, subs, nil
}

// rebuild recomputes the watched mailboxes from the mailbox list, keeping
// what is known of mailboxes watched before (new ones get a zero status:
// the caller fills it). It reports false when too many would be watched.
func (n *notifyState) rebuild(boxes []store.MailboxInfo, subs map[string]bool) bool {
	watched := make(map[int64]*watchedBox)
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		var msg, flags bool
		for i := range n.groups {
			g := &n.groups[i]
			if g.msg && g.matches(b.Name, subs) {
				msg = true
				flags = flags || g.flags
			}
		}
		if !msg {
			continue
		}
		w := n.watched[b.ID]
		if w == nil || w.st.uidValidity != b.UIDValidity {
			w = &watchedBox{st: boxStatus{uidValidity: b.UIDValidity}}
		}
		w.name, w.flags = b.Name, flags
		watched[b.ID] = w
	}
	if len(watched) > maxNotifyMailboxes {
		return false
	}
	n.watched = watched
	if n.wantList {
		n.boxes = make(map[int64]store.MailboxInfo, len(boxes))
		for _, b := range boxes {
			n.boxes[b.ID] = b
		}
		n.subs = subs
	} else {
		n.boxes, n.subs = nil, nil
	}
	return true
}

// ownChange lists commands whose effects on other mailboxes and on the
// mailbox list this session is not told about again (RFC 5465 §5: SHOULD
// NOT notify the client of events it caused).
func ownChange(name string) bool {
	switch name {
	case "APPEND", "COPY", "MOVE", "CLOSE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE":
		return true
	}
	return false
}

// notifyDeliver sends what changed since the last delivery: STATUS for
// watched mailboxes, LIST for mailbox list events and, unless idling (IDLE
// syncs the selected mailbox itself), the selected mailbox's updates.
// Buffers must be acquired.
func (c *conn) notifyDeliver(ctx context.Context, idling bool) error {
	n := c.notify
	if n == nil {
		return nil
	}
	absorb := false
	if c.cmd != nil && c.cmd != n.absorbed && ownChange(c.cmd.Name) {
		absorb = true
		n.absorbed = c.cmd
	}
	ids, all, list := n.sub.Take()
	if n.sub.TakeShared() {
		if err := c.notifySharedChanged(ctx, absorb); err != nil {
			return err
		}
		if c.notify == nil {
			return nil // overflow
		}
	}
	if list {
		if err := c.notifyListChanged(ctx, absorb); err != nil {
			return err
		}
		if c.notify == nil {
			return nil // overflow
		}
		all = true // renamed mailboxes, new watched mailboxes
	}
	if all {
		ids = n.watchedIDs()
	} else {
		slices.SortFunc(ids, func(a, b int64) int {
			wa, wb := n.watched[a], n.watched[b]
			if wa == nil || wb == nil {
				return 0
			}
			return compareMailboxNames(wa.name, wb.name)
		})
	}
	for _, id := range ids {
		w := n.watched[id]
		if w == nil || c.isSelected(c.user, id) {
			continue
		}
		st, err := c.acct.Status(ctx, w.name)
		if err != nil {
			if isNoMailbox(err) {
				continue // deleted or renamed: the list change follows
			}
			return fmt.Errorf("notify: status of %q: %w", w.name, err)
		}
		now := statusOfInfo(&st)
		if !absorb {
			c.notifyStatusChange(w, &now)
		}
		w.st = now
	}
	if err := c.notifyDeliverOthers(ctx, absorb); err != nil {
		return err
	}
	if !idling && c.sel != nil && n.selMode != selNone {
		return c.sync(ctx, n.selMode == selImmediate)
	}
	return nil
}

// notifyStatusChange writes the STATUS response reporting the change from
// w.st to now, if the client asked for it (RFC 5465 §5.1-5.3).
func (c *conn) notifyStatusChange(w *watchedBox, now *boxStatus) {
	old := &w.st
	if *old == *now {
		return
	}
	modseq := c.condstore || c.qresync
	var items []string
	switch {
	case old.uidValidity != now.uidValidity:
		items = []string{"MESSAGES", "UIDNEXT", "UIDVALIDITY"}
		if w.flags {
			items = append(items, "UNSEEN")
		}
		if modseq {
			items = append(items, "HIGHESTMODSEQ")
		}
	case old.messages != now.messages || old.uidNext != now.uidNext:
		items = []string{"MESSAGES", "UIDNEXT"}
		if w.flags && old.unseen != now.unseen {
			items = append(items, "UNSEEN")
		}
		if modseq {
			items = append(items, "HIGHESTMODSEQ")
		}
	case w.flags && modseq && old.modSeq != now.modSeq:
		items = []string{"UIDVALIDITY"}
		if old.unseen != now.unseen {
			items = append(items, "UNSEEN")
		}
		items = append(items, "HIGHESTMODSEQ")
	case w.flags && old.unseen != now.unseen:
		items = []string{"UNSEEN"}
	default:
		return
	}
	c.writeBoxStatus(w.name, now, items)
}

func (c *conn) writeBoxStatus(name string, st *boxStatus, items []string) {
	c.w.WriteString("* STATUS ")
	c.w.AString(c.wireName(name))
	c.w.WriteString(" (")
	for i, it := range items {
		if i > 0 {
			c.w.SP()
		}
		c.w.WriteString(it)
		c.w.SP()
		switch it {
		case "MESSAGES":
			c.w.Number32(st.messages)
		case "UIDNEXT":
			c.w.Number32(st.uidNext)
		case "UIDVALIDITY":
			c.w.Number32(st.uidValidity)
		case "UNSEEN":
			c.w.Number32(st.unseen)
		case "HIGHESTMODSEQ":
			c.w.Number(st.modSeq)
		}
	}
	c.w.WriteString(")\r\n")
}

// notifyListChanged reloads the mailbox list, reports MailboxName and
// SubscriptionChange events as LIST responses (unless absorb) and
// recomputes the watched mailboxes.
func (c *conn) notifyListChanged(ctx context.Context, absorb bool) error {
	n := c.notify
	boxes, subs, err := c.notifyLoadList(ctx)
	if err != nil {
		return err
	}
	if n.wantList && !absorb {
		c.notifyListEvents(boxes, subs)
	}
	if !n.rebuild(boxes, subs) {
		c.notifyOverflow()
		return nil
	}
	// Mailboxes that became watched start from their current status.
	for _, w := range n.watched {
		if w.st.uidNext != 0 {
			continue
		}
		st, err := c.acct.Status(ctx, w.name)
		if err != nil {
			if isNoMailbox(err) {
				continue
			}
			return fmt.Errorf("notify: status of %q: %w", w.name, err)
		}
		w.st = statusOfInfo(&st)
	}
	return nil
}

// notifyListEvents compares the new mailbox list with the last one and
// writes a LIST response per affected name (RFC 5465 §5.4, §5.5).
func (c *conn) notifyListEvents(boxes []store.MailboxInfo, subs map[string]bool) {
	n := c.notify
	byName := make(map[string]store.MailboxInfo, len(boxes))
	byID := make(map[int64]store.MailboxInfo, len(boxes))
	for _, b := range boxes {
		byName[b.Name] = b
		byID[b.ID] = b
	}
	oldByName := make(map[string]bool, len(n.boxes))
	for _, b := range n.boxes {
		oldByName[b.Name] = true
	}
	wants := func(name string, sel func(g *notifyGroup) bool) bool {
		for i := range n.groups {
			g := &n.groups[i]
			if sel(g) && (g.matches(name, subs) || g.matches(name, n.subs)) {
				return true
			}
		}
		return false
	}
	nameEvent := func(g *notifyGroup) bool { return g.mailboxName }
	subEvent := func(g *notifyGroup) bool { return g.subChange }

	type rename struct{ from, to string }
	var renames []rename
	changed := map[string]bool{} // created, deleted or made \Noselect
	for id, ob := range n.boxes {
		nb, ok := byID[id]
		switch {
		case !ok:
			if _, again := byName[ob.Name]; !again || byName[ob.Name].NoSelect != ob.NoSelect {
				changed[ob.Name] = true
			}
		case nb.Name != ob.Name:
			renames = append(renames, rename{ob.Name, nb.Name})
		case nb.NoSelect != ob.NoSelect:
			changed[nb.Name] = true
		}
	}
	for _, b := range boxes {
		if _, ok := n.boxes[b.ID]; !ok && !oldByName[b.Name] {
			changed[b.Name] = true
		}
	}
	// The direct parent of a created or deleted mailbox is affected too.
	for name := range changed {
		if p := parentName(name); p != "" {
			if _, renamed := byName[p]; renamed || oldByName[p] {
				changed[p] = true
			}
		}
	}
	// Children are renamed with their parent: one event for the parent.
	slices.SortFunc(renames, func(a, b rename) int { return strings.Compare(a.from, b.from) })
	var top []rename
	for _, r := range renames {
		child := false
		for _, p := range top {
			if strings.HasPrefix(r.from, p.from+store.Separator) && r.to == p.to+r.from[len(p.from):] {
				child = true
				break
			}
		}
		if !child {
			top = append(top, r)
		}
	}
	reported := map[string]bool{}
	for _, r := range top {
		if wants(r.from, nameEvent) || wants(r.to, nameEvent) {
			c.writeNotifyList(r.to, r.from, byName, subs)
			reported[r.to] = true
		}
	}
	names := make([]string, 0, len(changed))
	for name := range changed {
		names = append(names, name)
	}
	slices.SortFunc(names, compareMailboxNames)
	for _, name := range names {
		if !reported[name] && wants(name, nameEvent) {
			c.writeNotifyList(name, "", byName, subs)
			reported[name] = true
		}
	}
	var subChanged []string
	for name := range subs {
		if !n.subs[name] {
			subChanged = append(subChanged, name)
		}
	}
	for name := range n.subs {
		if !subs[name] {
			subChanged = append(subChanged, name)
		}
	}
	slices.SortFunc(subChanged, compareMailboxNames)
	for _, name := range subChanged {
		if !reported[name] && wants(name, subEvent) {
			c.writeNotifyList(name, "", byName, subs)
			reported[name] = true
		}
	}
}

// writeNotifyList writes an unsolicited LIST response for name, with all
// attributes computed (RFC 5465 §5.5) and OLDNAME after a rename.
func (c *conn) writeNotifyList(name, oldName string, byName map[string]store.MailboxInfo, subs map[string]bool) {
	var attrs []string
	if b, ok := byName[name]; ok {
		if b.NoSelect {
			attrs = append(attrs, `\Noselect`)
		}
		children := false
		for other := range byName {
			if strings.HasPrefix(other, name+store.Separator) {
				children = true
				break
			}
		}
		if children {
			attrs = append(attrs, `\HasChildren`)
		} else {
			attrs = append(attrs, `\HasNoChildren`)
		}
		if b.SpecialUse != "" {
			attrs = append(attrs, b.SpecialUse)
		}
	} else {
		attrs = append(attrs, `\NonExistent`)
	}
	if subs[name] {
		attrs = append(attrs, `\Subscribed`)
	}
	c.w.WriteString("* LIST (")
	c.w.WriteString(strings.Join(attrs, " "))
	c.w.WriteString(`) "/" `)
	c.w.AString(c.wireName(name))
	if oldName != "" {
		c.w.WriteString(` ("OLDNAME" (`)
		c.w.AString(c.wireName(oldName))
		c.w.WriteString("))")
	}
	c.w.CRLF()
}

// notifyFetchNew sends the MessageNew FETCH attributes for messages of the
// selected mailbox above UID before (RFC 5465 §5.2). sync calls it after
// reporting EXISTS.
func (c *conn) notifyFetchNew(ctx context.Context, before uint32) error {
	n := c.notify
	if n == nil || n.selMode == selNone || len(n.selFetch) == 0 || c.sel == nil {
		return nil
	}
	i, _ := slices.BinarySearch(c.sel.uids, before+1)
	if i >= len(c.sel.uids) {
		return nil
	}
	fetch := &imap.Command{Tag: "*", Name: "FETCH", UID: true, Args: &imap.FetchArgs{
		Set: imap.SetFromNums(slices.Clone(c.sel.uids[i:])), Items: n.selFetch}}
	err := cmdFetch(ctx, c, fetch)
	var re *respError
	if errors.As(err, &re) {
		c.log.Debug("notify: fetch new messages", "err", err)
		return nil
	}
	return err
}

// notifyRetry is how long a session waits to deliver NOTIFY events again
// after the store failed to provide them.
const notifyRetry = time.Second

// notifyFailed handles a storage error while delivering NOTIFY events
// between commands, as syncFailed does after a command: logged at error
// level, and the session ends ("* BYE", reported true) only if its
// database is unusable or delivery failed maxSyncFailures times in a row.
func (c *conn) notifyFailed(err error) bool {
	c.notifyFailures++
	end := storageUnusable(err) || c.notifyFailures >= maxSyncFailures
	c.log.Error("sending NOTIFY updates failed", "user", c.user, "err", err,
		"failures_in_a_row", c.notifyFailures, "ending_session", end)
	if end {
		c.bye("[UNAVAILABLE] Server storage error; please reconnect later")
	}
	return end
}

// waitInputUntil waits for the client's next command until wake, without
// change signals; retry reports that wake passed before the session's
// deadline, and otherwise err is what waitInput returned.
func (c *conn) waitInputUntil(wake, deadline time.Time) (retry bool, err error) {
	c.nc.SetReadDeadline(wake)
	err = c.waitInput()
	if err == nil {
		c.nc.SetReadDeadline(deadline)
		return false, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !c.shuttingDown() && time.Now().Before(deadline) {
		return true, nil
	}
	return false, err
}

// earlier returns the earlier of two times.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// waitCommand waits until the client sends something (conn.waitInput).
// With NOTIFY active it delivers events while it waits: a change signal
// interrupts the read through the read deadline, as in IDLE. Buffers are
// held on entry and on return.
func (c *conn) waitCommand(ctx context.Context, deadline time.Time) error {
	wake := func() {
		c.woken.Store(true)
		c.nc.SetReadDeadline(time.Now())
	}
	for {
		n := c.notify
		if n == nil {
			return c.waitInputOrPark(deadline) // park.go
		}
		c.woken.Store(false)
		if err := c.notifyDeliver(ctx, false); err != nil {
			if errors.Is(err, errLogout) {
				return errClose
			}
			if isConnError(err) {
				return err
			}
			if c.notifyFailed(err) {
				return errClose
			}
			// Retried after notifyRetry (or after the client's next
			// command), not at every change signal.
			if retry, err := c.waitInputUntil(earlier(deadline, time.Now().Add(notifyRetry)), deadline); retry {
				continue
			} else {
				return err
			}
		}
		c.notifyFailures = 0
		if c.notify == nil {
			continue
		}
		n.sub.SetWake(wake)
		// Another user's selected mailbox signals under its owner, not
		// on the user's subscription: watch it too (NOTIFY SELECTED).
		other := c.sel != nil && c.sel.owner != c.user && n.selMode != selNone
		if other {
			c.sel.sub.SetWake(wake)
		}
		unwake := func() {
			n.sub.SetWake(nil)
			if other {
				c.sel.sub.SetWake(nil)
			}
		}
		c.setWaitDeadline(deadline) // park.go
		// A signal that raced with setting the deadline.
		if c.woken.Load() || n.sub.Pending() || (other && len(c.sel.sub.C) > 0) {
			unwake() // notifyDeliver syncs the selected mailbox
			continue
		}
		err := c.waitInput()
		unwake()
		if err == nil {
			// A wake that raced with the read must not cut the command.
			c.nc.SetReadDeadline(deadline)
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && c.woken.Load() && !c.shuttingDown() && time.Now().Before(deadline) {
			continue
		}
		return err
	}
}

// notifyIdleWake installs wake on the NOTIFY subscription for IDLE and
// returns the function that removes it.
func (c *conn) notifyIdleWake(wake func()) func() {
	n := c.notify
	if n == nil {
		return func() {}
	}
	n.sub.SetWake(wake)
	return func() { n.sub.SetWake(nil) }
}

// notifyIdle delivers NOTIFY events during IDLE, when a signal is pending.
// IDLE holds no buffers: they are taken for the write and given back.
func (c *conn) notifyIdle(ctx context.Context) error {
	if c.notify == nil || !c.notify.sub.Pending() {
		return nil
	}
	c.acquire(nil)
	if err := c.notifyDeliver(ctx, true); err != nil {
		return err
	}
	return c.release()
}

// notifyPending reports whether NOTIFY has a signal waiting.
func (c *conn) notifyPending() bool {
	return c.notify != nil && c.notify.sub.Pending()
}

// notifyWantsUID reports whether unsolicited FETCH responses for flag
// changes must carry UID (RFC 5465 §5.1: with NOTIFY SELECTED FlagChange).
func (c *conn) notifyWantsUID() bool {
	return c.notify != nil && c.notify.selMode != selNone
}
