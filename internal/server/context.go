package server

import (
	"context"
	"slices"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/search"
	msgsort "github.com/tern-imap/tern/internal/sort"
	"github.com/tern-imap/tern/internal/store"
)

// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): the UPDATE return option
// keeps a search or sort result live; as messages change the session
// sends ESEARCH ADDTO/REMOVEFROM until CANCELUPDATE or the mailbox is
// closed. PARTIAL (§4.4, RFC 9394) returns a window of the result.

const contextCapabilities = " CONTEXT=SEARCH CONTEXT=SORT"

// maxContexts bounds the live results one session may keep.
const maxContexts = 32

// searchContext is one live RETURN (UPDATE) result.
type searchContext struct {
	tag    string
	uid    bool
	key    *imap.SearchKey
	crit   []msgsort.Criterion // nil for SEARCH
	result []uint32            // UIDs: ascending for SEARCH, in sort order for SORT
	// modSeq and maxUID are the view's HIGHESTMODSEQ and last UID when
	// result was last brought up to date: messages with a higher modseq
	// or UID are the ones to evaluate again (refreshContexts).
	modSeq uint64
	maxUID uint32
}

// contextSuppressesAll reports whether the return options hold UPDATE or
// PARTIAL, in which case an otherwise empty option list does not mean ALL.
func contextSuppressesAll(ret []string) bool {
	return slices.Contains(ret, "UPDATE") || slices.Contains(ret, "PARTIAL")
}

// writePartialResult writes " PARTIAL (range set|NIL)" for p over nums
// (the whole result, in result order). ordered keeps the order (ESORT).
func (c *conn) writePartialResult(p *imap.PartialRange, nums []uint32, ordered bool) {
	if p == nil {
		return
	}
	c.w.WriteString(" PARTIAL (")
	c.w.WriteString(p.String())
	c.w.SP()
	win := partialWindow(p, nums)
	switch {
	case len(win) == 0:
		c.w.WriteString("NIL")
	case ordered:
		c.w.WriteString(imap.SetFromRuns(win).String())
	default:
		c.w.WriteString(imap.SetFromNums(win).String())
	}
	c.w.WriteByte(')')
}

// partialWindow returns the positions p selects from nums.
func partialWindow[T any](p *imap.PartialRange, nums []T) []T {
	n := uint64(len(nums))
	lo, hi := uint64(p.Lo), uint64(p.Hi)
	if lo > n {
		return nil
	}
	hi = min(hi, n)
	if p.FromEnd {
		return nums[n-hi : n-lo+1]
	}
	return nums[lo-1 : hi]
}

// addContext registers a live result for cmd when its options hold UPDATE.
func (c *conn) addContext(cmd *imap.Command, ret []string, key *imap.SearchKey, crit []msgsort.Criterion, result []uint32) {
	if !slices.Contains(ret, "UPDATE") || c.sel == nil {
		return
	}
	sel := c.sel
	sel.contexts = slices.DeleteFunc(sel.contexts, func(sc *searchContext) bool { return sc.tag == cmd.Tag })
	if len(sel.contexts) >= maxContexts {
		sel.contexts = slices.Delete(sel.contexts, 0, 1)
	}
	sel.contexts = append(sel.contexts, &searchContext{
		tag: cmd.Tag, uid: cmd.UID, key: key, crit: crit, result: slices.Clone(result),
		modSeq: sel.modSeq, maxUID: sel.maxUID,
	})
}

// cmdCancelUpdate is CANCELUPDATE tag... (RFC 5267 §4.3.5).
func cmdCancelUpdate(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.CancelUpdateArgs)
	c.sel.contexts = slices.DeleteFunc(c.sel.contexts, func(sc *searchContext) bool {
		return slices.Contains(args.Tags, sc.tag)
	})
	return nil
}

// contextsExpunged sends REMOVEFROM for live results holding UIDs about
// to be reported expunged (uids ascending), using the sequence numbers
// they still have, and drops them from the results.
func (c *conn) contextsExpunged(uids []uint32) {
	sel := c.sel
	for _, sc := range sel.contexts {
		var gone []uint32
		for _, u := range sc.result {
			if _, ok := slices.BinarySearch(uids, u); ok {
				gone = append(gone, u)
			}
		}
		if len(gone) == 0 {
			continue
		}
		c.writeContextChange(sc, "REMOVEFROM", sc.result, gone)
		sc.result = slices.DeleteFunc(sc.result, func(u uint32) bool {
			_, ok := slices.BinarySearch(uids, u)
			return ok
		})
	}
}

// refreshContexts brings every live result up to date with the current
// view and reports the differences. Messages waiting to be reported
// expunged are left alone: contextsExpunged handles them.
func (c *conn) refreshContexts(ctx context.Context) error {
	sel := c.sel
	if sel == nil || len(sel.contexts) == 0 {
		return nil
	}
	for _, sc := range sel.contexts {
		next, changed, err := c.contextMatches(ctx, sc)
		if err != nil {
			c.log.Warn("context update", "tag", sc.tag, "err", err)
			continue
		}
		if !changed {
			continue
		}
		pending := func(u uint32) bool {
			_, ok := slices.BinarySearch(sel.pendingExpunge, u)
			return ok
		}
		inNext := make(map[uint32]bool, len(next))
		for _, u := range next {
			inNext[u] = true
		}
		inOld := make(map[uint32]bool, len(sc.result))
		var removed []uint32
		for _, u := range sc.result {
			inOld[u] = true
			if !inNext[u] && !pending(u) {
				removed = append(removed, u)
			}
		}
		if len(removed) > 0 {
			c.writeContextChange(sc, "REMOVEFROM", sc.result, removed)
			sc.result = slices.DeleteFunc(sc.result, func(u uint32) bool { return !inNext[u] && !pending(u) })
		}
		var added []uint32
		for _, u := range next {
			if !inOld[u] {
				added = append(added, u)
			}
		}
		if len(added) > 0 {
			// The new result is next plus any pending-expunge UIDs still
			// held; those sort where they were, so keep next's order and
			// re-insert them in their old relative places.
			merged := mergeKept(sc.result, next, sc.crit == nil)
			c.writeContextChange(sc, "ADDTO", merged, added)
			sc.result = merged
		}
	}
	return nil
}

// contextMatches returns what sc's result is now (ascending for SEARCH,
// in sort order for SORT; messages pending expunge may be missing), or
// changed false when it cannot differ from sc.result. A key whose answer
// depends only on each message's own state (search.PerMessage) is
// evaluated again only for the messages that changed since the result
// was last brought up to date, as the mailbox's change feed (Changes,
// from the in-memory index) names them: new UIDs and higher modseqs.
// Other keys (sequence numbers, "$", "*", OLDER/YOUNGER) and relevancy
// sorts are searched again in full.
func (c *conn) contextMatches(ctx context.Context, sc *searchContext) (next []uint32, changed bool, err error) {
	sel := c.sel
	var matched []uint32
	var scores []uint8
	if search.PerMessage(sc.key) && !sortsByRelevancy(sc.crit) {
		cs, err := sel.acct.Changes(ctx, sel.info.ID, sc.modSeq, sc.maxUID)
		if err != nil {
			return nil, false, err
		}
		again := changedInView(sel.uids, cs.Changed, cs.New)
		var hits []uint32
		if len(again) > 0 {
			if hits, _, _, err = c.searchAmong(ctx, sc.key, again); err != nil {
				return nil, false, err
			}
		}
		// Messages beyond the view come in New again next time.
		sc.modSeq, sc.maxUID = max(sc.modSeq, cs.HighestModSeq), sel.maxUID
		if len(again) == 0 {
			return nil, false, nil
		}
		matched = mergeChanged(sc.result, again, hits)
	} else {
		if matched, _, scores, err = c.searchScored(ctx, sc.key); err != nil {
			return nil, false, err
		}
		sc.modSeq, sc.maxUID = sel.modSeq, sel.maxUID
	}
	if sc.crit == nil {
		return matched, true, nil
	}
	next, err = c.sortedUIDs(ctx, matched, scores, sc.crit)
	return next, err == nil, err
}

// changedInView returns, ascending, the UIDs of changed and added
// (ascending each) that are in the view uids.
func changedInView(uids []uint32, changed, added []store.MessageMeta) []uint32 {
	var out []uint32
	for _, list := range [][]store.MessageMeta{changed, added} {
		for _, m := range list {
			if _, ok := slices.BinarySearch(uids, m.UID); ok {
				out = append(out, m.UID)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// mergeChanged returns, ascending, the members of result that are not in
// again (both any order / ascending) plus hits: the result after the
// messages in again were evaluated anew and hits matched.
func mergeChanged(result, again, hits []uint32) []uint32 {
	out := make([]uint32, 0, len(result)+len(hits))
	for _, u := range result {
		if _, ok := slices.BinarySearch(again, u); !ok {
			out = append(out, u)
		}
	}
	out = append(out, hits...)
	slices.Sort(out)
	return slices.Compact(out)
}

// mergeKept returns next with the entries of old that next lacks (messages
// pending expunge) kept: for SEARCH in UID order, for SORT after the
// entry that preceded them in old.
func mergeKept(old, next []uint32, ascending bool) []uint32 {
	inNext := make(map[uint32]bool, len(next))
	for _, u := range next {
		inNext[u] = true
	}
	var kept []uint32
	for _, u := range old {
		if !inNext[u] {
			kept = append(kept, u)
		}
	}
	if len(kept) == 0 {
		return slices.Clone(next)
	}
	if ascending {
		out := append(slices.Clone(next), kept...)
		slices.Sort(out)
		return out
	}
	out := slices.Clone(next)
	for i, u := range old {
		if inNext[u] {
			continue
		}
		pos := 0
		if i > 0 {
			if j := slices.Index(out, old[i-1]); j >= 0 {
				pos = j + 1
			}
		}
		out = slices.Insert(out, pos, u)
	}
	return out
}

// writeContextChange writes "* ESEARCH (TAG t) [UID] kind (pos set ...)".
// list is the result the positions refer to (the old one for REMOVEFROM,
// the new one for ADDTO) and which its members that changed. For SEARCH
// the position is 0 (the result is in ascending order); for SORT each run
// of adjacent changed members gets its position, counted as if the runs
// before it had already been applied.
func (c *conn) writeContextChange(sc *searchContext, kind string, list, which []uint32) {
	num := func(u uint32) uint32 {
		if sc.uid {
			return u
		}
		n, _ := c.sel.seqOf(u)
		return n
	}
	c.w.WriteString("* ESEARCH (TAG ")
	c.w.String(sc.tag)
	c.w.WriteByte(')')
	if sc.uid {
		c.w.WriteString(" UID")
	}
	c.w.WriteString(" " + kind + " (")
	if sc.crit == nil {
		nums := make([]uint32, len(which))
		for i, u := range which {
			nums[i] = num(u)
		}
		slices.Sort(nums)
		c.w.WriteString("0 ")
		c.w.WriteString(imap.SetFromNums(nums).String())
	} else {
		isChanged := make(map[uint32]bool, len(which))
		for _, u := range which {
			isChanged[u] = true
		}
		first, removedSoFar := true, 0
		for i := 0; i < len(list); {
			if !isChanged[list[i]] {
				i++
				continue
			}
			j := i
			var run []uint32
			for j < len(list) && isChanged[list[j]] {
				run = append(run, num(list[j]))
				j++
			}
			pos := i + 1
			if kind == "REMOVEFROM" {
				pos -= removedSoFar
				removedSoFar += len(run)
			}
			if !first {
				c.w.SP()
			}
			first = false
			c.w.Number(uint64(pos))
			c.w.SP()
			c.w.WriteString(imap.SetFromRuns(run).String())
			i = j
		}
	}
	c.w.WriteString(")\r\n")
}

// sortedUIDs orders the UIDs matched (with their relevancy scores) by crit.
func (c *conn) sortedUIDs(ctx context.Context, matched []uint32, scores []uint8, crit []msgsort.Criterion) ([]uint32, error) {
	_, sorted, _, err := c.sortMatched(ctx, matched, scores, crit)
	return sorted, err
}
