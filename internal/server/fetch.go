package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
)

// resolveSet turns a sequence set (or UID set) into the ascending UIDs of
// messages in view it names. For message sequence numbers outside the view
// it returns a BAD error.
func (c *conn) resolveSet(set imap.NumSet, uidMode bool) ([]uint32, error) {
	sel := c.sel
	if set.Saved {
		// "$": the saved search result, still in view.
		out := make([]uint32, 0, len(sel.saved))
		for _, u := range sel.saved {
			if _, ok := slices.BinarySearch(sel.uids, u); ok {
				out = append(out, u)
			}
		}
		return out, nil
	}
	n := uint32(len(sel.uids))
	if uidMode {
		if n == 0 {
			return nil, nil
		}
		maxUID := sel.uids[n-1]
		var out []uint32
		for _, r := range set.Expand(maxUID) {
			lo, _ := slices.BinarySearch(sel.uids, r.Start)
			hi, _ := slices.BinarySearch(sel.uids, r.Stop)
			if hi < int(n) && sel.uids[hi] == r.Stop {
				hi++
			}
			out = append(out, sel.uids[lo:hi]...)
		}
		return out, nil
	}
	// RFC 9051 §9 (seq-number): "*" is the number of messages in a
	// non-empty mailbox, and a sequence number above that count, "*" in
	// an empty mailbox included, is answered BAD. (UID sets above: "*" is
	// then the last UID or UIDNEXT, and "1:*" names nothing.)
	if n == 0 {
		return nil, bad("", "Invalid message sequence number: the mailbox is empty")
	}
	for _, r := range set.Ranges {
		if (r.Start != 0 && r.Start > n) || (r.Stop != 0 && r.Stop > n) {
			return nil, bad("", "Invalid message sequence number")
		}
	}
	var out []uint32
	for _, r := range set.Expand(n) {
		out = append(out, sel.uids[r.Start-1:r.Stop]...)
	}
	return out, nil
}

// cmdFetch is [UID] FETCH set items [(CHANGEDSINCE n [VANISHED])]: each
// item is answered by its entry in fetchItems (fetch_items.go).
func cmdFetch(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.FetchArgs)
	uids, err := c.resolveSet(args.Set, cmd.UID)
	if err != nil {
		return err
	}
	if args.Vanished && !(cmd.UID && args.HasChangedSince && c.qresync) {
		return bad("", "VANISHED needs UID FETCH with CHANGEDSINCE after ENABLE QRESYNC")
	}
	// Under UIDONLY the UID is the response's number (UIDFETCH), so UID
	// FETCH does not add the UID item (uidonly.go).
	f := &fetchCmd{c: c, list: fetchItemList(args, cmd.UID && !c.uidOnly)}
	if f.list.needsContent() && !f.list.headerOnly() {
		c.useBodyBuffer() // message bodies: in as few writes as they fit
	}
	if f.list.has(imap.FetchModSeq) {
		c.enableCondstore()
	}
	if args.Vanished {
		if err := c.fetchVanished(ctx, args); err != nil {
			return err
		}
	}
	if err := f.markSeen(ctx, uids); err != nil {
		return err
	}
	f.bodyCtx = ctx
	if f.list.needsContent() && len(uids) <= keepBodiesMax {
		f.bodyCtx = store.KeepBody(ctx)
	}
	err = c.fetchShown(ctx, uids, f.want(), args, func(seq uint32, m *store.Message) error {
		return f.message(ctx, seq, m)
	})
	f.savePreviews(ctx)
	return f.finish(err)
}

// fetchCmd is one FETCH command under way.
type fetchCmd struct {
	c    *conn
	list fetchList // the items every message gets
	// seenNow holds the messages whose \Seen this command set; they get
	// withSeen, list plus what reports a flag change.
	seenNow  map[uint32]bool
	withSeen fetchList
	started  bool     // a FETCH response is partly written
	msg      fetchMsg // the message being answered, reused
	// previews holds the PREVIEW texts computed during the command for
	// messages stored without one, to be kept (savePreviews).
	previews map[uint32]string
	// bodyCtx is the context the command's bodies are opened with:
	// marked store.KeepBody when the FETCH is of a few messages, which
	// the mailbox index may keep for the next read; a client's download
	// of a whole mailbox would only churn that cache.
	bodyCtx context.Context
}

// keepBodiesMax is the largest FETCH whose bodies a cache in front of
// the store may keep (store.KeepBody).
const keepBodiesMax = 128

// fetchItemList is the command's items in answer order: UID first for UID
// FETCH, UID and FLAGS once each, and MODSEQ added for CHANGEDSINCE, which
// implies it (RFC 7162 §3.1.4.1).
func fetchItemList(args *imap.FetchArgs, uid bool) fetchList {
	var l fetchList
	if uid {
		l = l.add(imap.FetchItem{Kind: imap.FetchUID})
	}
	for _, it := range args.Items {
		if (it.Kind == imap.FetchUID || it.Kind == imap.FetchFlags) && l.has(it.Kind) {
			continue
		}
		l = l.add(it)
	}
	if args.HasChangedSince && !l.has(imap.FetchModSeq) {
		l = l.add(imap.FetchItem{Kind: imap.FetchModSeq})
	}
	return l
}

// fetchVanished sends VANISHED (EARLIER) for the UIDs of the set expunged
// since CHANGEDSINCE (RFC 7162 §3.2.6).
func (c *conn) fetchVanished(ctx context.Context, args *imap.FetchArgs) error {
	sel := c.sel
	gone, err := sel.acct.Vanished(ctx, sel.info.ID, args.ChangedSince)
	if err != nil {
		return fmt.Errorf("fetch vanished in %q: %w", sel.info.Name, err)
	}
	gone = slices.DeleteFunc(gone, func(u uint32) bool { return !args.Set.Contains(u, sel.maxUID) })
	if len(gone) > 0 {
		c.w.WriteString("* VANISHED (EARLIER) ")
		c.w.WriteString(imap.SetFromNums(gone).String())
		c.w.CRLF()
	}
	return nil
}

// markSeen sets \Seen on uids if an item implies it and the view is
// writable. The messages that gain it report their new flags in their
// FETCH response.
func (f *fetchCmd) markSeen(ctx context.Context, uids []uint32) error {
	c, sel := f.c, f.c.sel
	if sel.readOnly || !sel.mayStore(`\Seen`) || len(uids) == 0 || !f.list.setsSeen() {
		return nil
	}
	before := c.flagsBefore(ctx, uids)
	res, err := sel.acct.StoreFlags(ctx, sel.info.ID, uids, store.FlagsAdd, []string{`\Seen`}, 0, false)
	if err != nil {
		return fmt.Errorf("fetch: set \\Seen: %w", err)
	}
	c.runIMAPSieveFlags(ctx, before, res.Updated)
	f.seenNow = make(map[uint32]bool)
	for _, m := range res.Updated {
		if m.ModSeq > sel.modSeq {
			f.seenNow[m.UID] = true
			c.noteOwnChange(m.UID, m.ModSeq)
		}
	}
	f.withSeen = f.list.withFlagChange(c.condstore)
	return nil
}

// want is what the store must fill for this command's messages.
func (f *fetchCmd) want() store.Want {
	if len(f.seenNow) > 0 {
		return f.withSeen.want()
	}
	return f.list.want()
}

// fetchShown runs Fetch over uids and calls fn for each message the FETCH
// answers: still in this session's view and passing the CHANGEDSINCE
// filter. With CHANGEDSINCE the set is first narrowed to the messages the
// store reports changed since then (O(changes) from the mailbox index's
// change log or the store's modseq index), so a resync never walks the
// whole mailbox.
func (c *conn) fetchShown(ctx context.Context, uids []uint32, want store.Want, args *imap.FetchArgs, fn func(seq uint32, m *store.Message) error) error {
	if args.HasChangedSince && len(uids) > 0 {
		cs, err := c.sel.acct.Changes(ctx, c.sel.info.ID, args.ChangedSince, math.MaxUint32)
		if err != nil {
			return fmt.Errorf("fetch changedsince in %q: %w", c.sel.info.Name, err)
		}
		uids = intersectChanged(uids, cs.Changed)
	}
	view := c.sel.cursor() // Fetch calls back in ascending UID order
	return c.sel.acct.Fetch(ctx, c.sel.info.ID, uids, want, func(m *store.Message) error {
		seq, ok := view.seq(m.UID)
		if !ok || !changedSince(args, m) {
			return nil
		}
		return fn(seq, m)
	})
}

// intersectChanged keeps the UIDs of uids (ascending) that are in changed
// (ascending by UID).
func intersectChanged(uids []uint32, changed []store.MessageMeta) []uint32 {
	out := make([]uint32, 0, min(len(uids), len(changed)))
	for _, m := range changed {
		if _, ok := slices.BinarySearch(uids, m.UID); ok {
			out = append(out, m.UID)
		}
	}
	return out
}

// changedSince reports whether m passes the CHANGEDSINCE modifier (RFC 7162
// §3.1.4.1), if there is one.
func changedSince(args *imap.FetchArgs, m *store.Message) bool {
	return !args.HasChangedSince || m.ModSeq > args.ChangedSince
}

// message writes one message's FETCH response.
func (f *fetchCmd) message(ctx context.Context, seq uint32, sm *store.Message) error {
	c, list := f.c, f.list
	if f.seenNow[sm.UID] {
		list = f.withSeen
	}
	m := &f.msg
	*m = fetchMsg{Message: sm}
	defer m.close()
	// Open the body before writing anything: a message another session
	// expunged since our view was taken is skipped cleanly (RFC 9051
	// lets the server omit it) instead of breaking the response.
	if list.needsContent() && sm.Header != nil && list.headerOnly() {
		m.useHeader(sm.Header)
	} else if list.needsContent() {
		if err := c.openContent(f.bodyCtx, m); err != nil {
			if errors.Is(err, store.ErrNoSuchMessage) {
				return nil
			}
			return err
		}
	}
	if err := list.prepare(m); err != nil {
		return err
	}
	if sm.Preview == nil && list.eagerPreview() {
		if err := f.computePreview(ctx, m); err != nil {
			if errors.Is(err, store.ErrNoSuchMessage) {
				return nil
			}
			return err
		}
	}
	if list.has(imap.FetchFlags) {
		c.announceKeywords(m.Flags)
	}
	f.started = true
	c.writeFetchHead(seq, sm.UID)
	if err := list.write(c, m); err != nil {
		return err
	}
	c.w.WriteString(")\r\n")
	f.started = false
	return nil
}

// computePreview computes the PREVIEW of a message stored before
// previews were kept (its Preview is nil) from the message itself, as
// delivery does, so the answer never waits for the background indexer
// (RFC 8970 allows NIL only for PREVIEW (LAZY)). The text is kept at the
// end of the command (savePreviews).
func (f *fetchCmd) computePreview(ctx context.Context, m *fetchMsg) error {
	c := f.c
	b, err := c.sel.acct.OpenBody(ctx, c.sel.info.ID, m.UID)
	if err != nil {
		return fmt.Errorf("preview of uid %d: %w", m.UID, err)
	}
	defer b.Close()
	root, err := message.DecodeParts(b.Parts())
	if err != nil || root == nil {
		return fmt.Errorf("preview of uid %d: part tree: %w", m.UID, err)
	}
	p := search.Preview(b, root)
	m.Preview = &p
	if f.previews == nil {
		f.previews = map[uint32]string{}
	}
	f.previews[m.UID] = p
	return nil
}

// savePreviews keeps the previews computePreview made; failing to is
// only logged (they are computed again next time).
func (f *fetchCmd) savePreviews(ctx context.Context) {
	if len(f.previews) == 0 {
		return
	}
	c := f.c
	if err := c.sel.acct.SavePreviews(ctx, c.sel.info.ID, f.previews); err != nil && ctx.Err() == nil {
		c.log.Warn("fetch: keeping computed previews failed", "mailbox", c.sel.info.Name, "err", err)
	}
}

// finish turns the error of the message loop into the command's result.
func (f *fetchCmd) finish(err error) error {
	if err == nil {
		return nil
	}
	var re *respError
	if errors.As(err, &re) {
		return err
	}
	sel := f.c.sel
	if f.started {
		// A response is half written: the stream cannot be resynced.
		f.c.log.Error("fetch failed mid-response; closing connection", "mailbox", sel.info.Name, "err", err)
		return errClose
	}
	return fmt.Errorf("fetch in %q: %w", sel.info.Name, err)
}
