package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// A contentMap is one mailbox's messages by content id, sorted by
// content id: the full-text index answers with content ids (its rowid),
// and a search needs the mailbox's UIDs of them. Mapping them in Go by a
// merge with the sorted hits costs a few nanoseconds a hit, where a join
// in SQLite cost one messages_content index seek per hit (a quarter of
// a search of a word found in half the mailbox).
//
// A map describes the mailbox at one HIGHESTMODSEQ. Every new message
// has a UID at or above the UIDNEXT of that moment, and every expunge
// leaves an expunged row with a higher modseq, so a map catches up with
// a later snapshot from those two (catchUp) instead of reading the
// mailbox again; flag changes only move the modseq. A message's content
// id never changes. The one deletion without an expunged row, DELETE of
// a mailbox that stays as a \Noselect parent, leaves a mailbox that is
// never searched again: created again, it gets a new id.
type contentMap struct {
	uidValidity uint32
	uidNext     uint32
	modseq      uint64
	cids        []int64  // ascending
	uids        []uint32 // uids[i] holds content cids[i]

	sortOnce sync.Once
	sorted   []uint32 // uids ascending (sortedUIDs)
}

// sortedUIDs returns the map's UIDs ascending (store.TextResult.Covered),
// sorted once per map; callers must not change them.
func (cm *contentMap) sortedUIDs() []uint32 {
	cm.sortOnce.Do(func() { cm.sorted = slices.Sorted(slices.Values(cm.uids)) })
	return cm.sorted
}

// contentMapBoxes bounds the maps one user keeps (least recently used
// go first): a map costs 12 bytes per message.
const contentMapBoxes = 4

// contentMaps are a user's cached contentMaps, most recently used
// first.
type contentMaps struct {
	mu    sync.Mutex
	boxes []cachedMap
}

type cachedMap struct {
	mailboxID int64
	m         *contentMap
}

// get returns the cached map of mailbox id.
func (c *contentMaps) get(id int64) *contentMap {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range c.boxes {
		if b.mailboxID == id {
			// Most recently used first.
			copy(c.boxes[1:i+1], c.boxes[:i])
			c.boxes[0] = b
			return b.m
		}
	}
	return nil
}

// put keeps m for mailbox id unless a map of a later snapshot is kept
// already (a search in an older snapshot built m).
func (c *contentMaps) put(id int64, m *contentMap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range c.boxes {
		if b.mailboxID == id {
			if b.m.uidValidity == m.uidValidity && b.m.modseq > m.modseq {
				return
			}
			c.boxes = slices.Delete(c.boxes, i, i+1)
			break
		}
	}
	c.boxes = slices.Insert(c.boxes, 0, cachedMap{mailboxID: id, m: m})
	if len(c.boxes) > contentMapBoxes {
		c.boxes = c.boxes[:contentMapBoxes]
	}
}

// mailboxContents returns the content map of mailbox id as transaction
// tx sees it: the cached one when it is of this snapshot, else the
// cached one caught up, else read from the messages.
func (u *userDB) mailboxContents(ctx context.Context, tx *sqlTx, id int64) (*contentMap, error) {
	cached := u.contentMaps.get(id)
	m, err := mboxByID(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case cached != nil && cached.uidValidity == m.uidValidity && cached.modseq == m.highest:
		return cached, nil
	case cached != nil && cached.uidValidity == m.uidValidity && cached.modseq < m.highest:
		cm, err := cached.catchUp(ctx, tx, id, m)
		if err != nil {
			return nil, err
		}
		u.contentMaps.put(id, cm)
		return cm, nil
	}
	cm, err := readContentMap(ctx, tx, id, m)
	if err != nil {
		return nil, err
	}
	u.contentMaps.put(id, cm)
	return cm, nil
}

// readContentMap reads the content map of mailbox m from its messages.
func readContentMap(ctx context.Context, tx *sqlTx, id int64, m mbox) (*contentMap, error) {
	contentMapReads.Add(1)
	cm := &contentMap{uidValidity: m.uidValidity, uidNext: m.uidNext, modseq: m.highest}
	if err := cm.addMessages(ctx, tx, id, 0); err != nil {
		return nil, err
	}
	return cm, nil
}

// addMessages adds the messages of mailbox id with a UID at or above
// from, keeping the map sorted.
func (cm *contentMap) addMessages(ctx context.Context, tx *sqlTx, id int64, from uint32) error {
	var uids []uint32
	var cids []int64
	// Two lists from one scan of the mailbox's rows: the same row feeds
	// both, so they stay aligned.
	var uidList, cidList []byte
	if err := tx.QueryRowContext(ctx, `SELECT group_concat(uid), group_concat(content_id) FROM messages WHERE mailbox_id = ? AND uid >= ?`,
		id, from).Scan(&uidList, &cidList); err != nil {
		return fmt.Errorf("read content map: %w", err)
	}
	if err := parseIntList(uidList, 1<<32-1, func(n uint64) { uids = append(uids, uint32(n)) }); err != nil {
		return fmt.Errorf("read content map: %w", err)
	}
	if err := parseIntList(cidList, 1<<62, func(n uint64) { cids = append(cids, int64(n)) }); err != nil {
		return fmt.Errorf("read content map: %w", err)
	}
	if len(uids) != len(cids) {
		return fmt.Errorf("read content map: %d uids, %d contents", len(uids), len(cids))
	}
	if len(uids) == 0 {
		return nil
	}
	idx := make([]int, len(uids))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Or(cmp.Compare(cids[a], cids[b]), cmp.Compare(uids[a], uids[b])) })
	newCids, newUIDs := make([]int64, len(idx)), make([]uint32, len(idx))
	for i, j := range idx {
		newCids[i], newUIDs[i] = cids[j], uids[j]
	}
	cm.merge(newCids, newUIDs)
	return nil
}

// merge adds the sorted entries (cids, uids) to the map.
func (cm *contentMap) merge(cids []int64, uids []uint32) {
	if len(cm.cids) == 0 {
		cm.cids, cm.uids = cids, uids
		return
	}
	outC := make([]int64, 0, len(cm.cids)+len(cids))
	outU := make([]uint32, 0, len(cm.cids)+len(cids))
	i, j := 0, 0
	for i < len(cm.cids) || j < len(cids) {
		if j == len(cids) || i < len(cm.cids) && cm.cids[i] <= cids[j] {
			outC, outU = append(outC, cm.cids[i]), append(outU, cm.uids[i])
			i++
		} else {
			outC, outU = append(outC, cids[j]), append(outU, uids[j])
			j++
		}
	}
	cm.cids, cm.uids = outC, outU
}

// catchUp returns a new map of mailbox m (a later snapshot of the same
// UIDVALIDITY): cm without the messages expunged since, plus the
// messages added since. cm itself is not changed (other searches may be
// reading it).
func (cm *contentMap) catchUp(ctx context.Context, tx *sqlTx, id int64, m mbox) (*contentMap, error) {
	gone, err := expungedRanges(ctx, tx, id, cm.modseq)
	if err != nil {
		return nil, err
	}
	out := &contentMap{uidValidity: m.uidValidity, uidNext: m.uidNext, modseq: m.highest, cids: cm.cids, uids: cm.uids}
	if len(gone.lo) > 0 {
		out.cids, out.uids = make([]int64, 0, len(cm.cids)), make([]uint32, 0, len(cm.uids))
		for i, u := range cm.uids {
			if !gone.has(u) {
				out.cids, out.uids = append(out.cids, cm.cids[i]), append(out.uids, u)
			}
		}
	}
	if m.uidNext > cm.uidNext {
		if err := out.addMessages(ctx, tx, id, cm.uidNext); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// uidRanges are UID ranges sorted by their low end, with reach[i] the
// highest hi of ranges 0..i (so overlapping ranges need no care).
type uidRanges struct {
	lo, reach []uint32
}

// has reports whether u lies in one of the ranges: the ranges starting
// at or below u reach it if the farthest of them does.
func (rs uidRanges) has(u uint32) bool {
	i, found := slices.BinarySearch(rs.lo, u)
	if found {
		return true
	}
	return i > 0 && rs.reach[i-1] >= u
}

// expungedRanges returns the UID ranges expunged from mailbox id with a
// modseq above since, sorted.
func expungedRanges(ctx context.Context, tx *sqlTx, id int64, since uint64) (uidRanges, error) {
	rows, err := tx.QueryContext(ctx, `SELECT uid_lo, uid_hi FROM expunged INDEXED BY expunged_modseq WHERE mailbox_id = ? AND modseq > ?`, id, since)
	if err != nil {
		return uidRanges{}, fmt.Errorf("read expunged: %w", err)
	}
	defer rows.Close()
	type span struct{ lo, hi uint32 }
	var spans []span
	for rows.Next() {
		var s span
		if err := rows.Scan(&s.lo, &s.hi); err != nil {
			return uidRanges{}, fmt.Errorf("read expunged: %w", err)
		}
		spans = append(spans, s)
	}
	if err := rows.Err(); err != nil {
		return uidRanges{}, fmt.Errorf("read expunged: %w", err)
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	var out uidRanges
	for i, s := range spans {
		out.lo = append(out.lo, s.lo)
		reach := s.hi
		if i > 0 {
			reach = max(reach, out.reach[i-1])
		}
		out.reach = append(out.reach, reach)
	}
	return out, nil
}

// has reports whether the mailbox holds content cid.
func (cm *contentMap) has(cid int64) bool {
	_, ok := slices.BinarySearch(cm.cids, cid)
	return ok
}

// uidsOf returns the UIDs of the messages holding the contents in cids
// (ascending), ascending.
func (cm *contentMap) uidsOf(cids []int64) []uint32 {
	out := make([]uint32, 0, len(cids))
	cm.eachUID(cids, func(_ int, uid uint32) { out = append(out, uid) })
	slices.Sort(out)
	return slices.Compact(out)
}

// inMailbox returns the contents of ascending cids that the mailbox
// holds.
func (cm *contentMap) inMailbox(cids []int64) []int64 {
	out := make([]int64, 0, min(len(cids), len(cm.cids)))
	j := 0
	for _, c := range cids {
		for j < len(cm.cids) && cm.cids[j] < c {
			j++
		}
		if j < len(cm.cids) && cm.cids[j] == c {
			out = append(out, c)
		}
	}
	return out
}

// contents returns the mailbox's contents, ascending, each once.
func (cm *contentMap) contents() []int64 {
	return slices.Compact(slices.Clone(cm.cids))
}

// eachUID calls fn with every UID holding one of the contents in
// ascending cids, and the index of that content in cids.
func (cm *contentMap) eachUID(cids []int64, fn func(i int, uid uint32)) {
	j := 0
	for i, c := range cids {
		for j < len(cm.cids) && cm.cids[j] < c {
			j++
		}
		for k := j; k < len(cm.cids) && cm.cids[k] == c; k++ {
			fn(i, cm.uids[k])
		}
	}
}

// contentMapReads counts the mailboxes read whole into a content map
// (tests check that a map catches up instead).
var contentMapReads atomic.Int64
