package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tern-imap/tern/internal/store"
)

// Mailbox is the index of one mailbox, shared by every session of it in
// the process. The store stays the truth: the index is loaded from it and
// catches up with one IndexDelta whenever the mailbox's modseq moved on
// (target) or this process wrote to it (stale).
type Mailbox struct {
	key    boxKey
	acctID int64

	catchMu sync.Mutex // serializes loads and catch-ups
	// fillMu serializes fills of the field lines (lines.go), so that
	// sessions searching a mailbox at once read its headers once.
	fillMu  sync.Mutex
	target  atomic.Uint64
	stale   atomic.Bool
	lastUse atomic.Int64 // registry clock at the last use (LRU)

	mu      sync.RWMutex // guards everything below
	loaded  bool
	dead    bool // the mailbox was deleted (ids are never reused)
	head    store.MailboxHead
	lastUID uint32 // UIDNEXT-1 as of the last snapshot applied
	kws     []string
	cols    columns
	// uidShared says cols.uid's array is in sessions' views (Snapshot
	// hands it out, clipped, instead of a copy): it is never written in
	// place below its length, and apply copies it before an expunge
	// compacts it. Set under the read lock, hence atomic.
	uidShared atomic.Bool
	sets      flagSets
	count     counters
	log       changeLog
	// fixed caches immutable per-UID fields for SORT/THREAD (fixed.go).
	fixed      map[uint32]*fixedFields
	fixedBytes int64
	// thread caches what THREAD needs, compactly (threadcache.go).
	thread *threadCache
	// content caches the fields small FETCHes ask for (content.go).
	content      map[uint32]*contentFields
	contentBytes int64
	// bodies caches the bytes of small messages FETCH read (bodies.go).
	bodies      map[uint32]*cachedBody
	bodiesBytes int64
	bodyTotal   *atomic.Int64 // Indexes.bodyBytes (nil in tests)
	// lines caches the field lines one-field searches read (lines.go);
	// a nil entry is a message without a stored header (linesNone of
	// them).
	lines      map[uint32][]byte
	linesBytes int64
	linesNone  int
	// seen holds the private \Seen of readers other than the owner, by
	// user (seen.go), guarded by seenMu under the read lock.
	seenMu    sync.Mutex
	seen      map[string]*seenCopy
	seenBytes int64
	// claiming is closed when the \Recent claim this process has in
	// flight for the mailbox ends (nil: none); see account.ClaimRecent.
	claiming chan struct{}
}

// counters are the mailbox totals that STATUS reports.
type counters struct {
	unseen, deleted   int
	size, deletedSize int64
}

func (c *counters) add(bits uint8, size int64, sign int) {
	if bits&seenBit == 0 {
		c.unseen += sign
	}
	if bits&deletedBit != 0 {
		c.deleted += sign
		c.deletedSize += int64(sign) * size
	}
	c.size += int64(sign) * size
}

// errStale asks the caller to fall back to the store: the index cannot
// answer (e.g. a change log that no longer reaches back far enough).
var errStale = errors.New("index cannot answer")

// fresh reports whether the index reflects every change signalled so far.
func (b *Mailbox) fresh() bool {
	if b.stale.Load() {
		return false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.loaded && (b.dead || b.target.Load() <= b.head.HighestModSeq)
}

// sync brings the index up to date with the store.
func (b *Mailbox) sync(ctx context.Context, src store.IndexSource) error {
	if b.fresh() {
		return nil
	}
	b.catchMu.Lock()
	defer b.catchMu.Unlock()
	if b.fresh() {
		return nil
	}
	// Cleared before the query: a write committed after this point marks
	// the index stale again.
	b.stale.Store(false)
	for range maxRetries {
		target := b.target.Load()
		b.mu.RLock()
		loaded, since, lastUID, validity := b.loaded, b.head.HighestModSeq, b.lastUID, b.head.UIDValidity
		b.mu.RUnlock()
		if !loaded {
			return b.load(ctx, src)
		}
		d, err := src.IndexDelta(ctx, b.key.mailbox, since, lastUID)
		if err != nil {
			return b.failed(err)
		}
		b.lowerTarget(target, d.Head.HighestModSeq)
		if d.Head.UIDValidity != validity || d.Head.HighestModSeq < since {
			return b.load(ctx, src)
		}
		b.mu.Lock()
		// A commit's own delta (applyOwn) or STORE result may have moved
		// the index while the query ran: then d may be older than the
		// index, and the query is asked again from where the index is.
		moved := b.head.HighestModSeq != since || b.lastUID != lastUID
		ok := moved || b.apply(&d)
		b.mu.Unlock()
		if !ok {
			return b.load(ctx, src)
		}
		if !moved {
			return nil
		}
	}
	return nil
}

// lowerTarget moves the target down from t, read before a query of the
// store, to head, the mailbox's modseq that query found, if that is
// lower and the target is still t. Every commit is signalled after it,
// so a query that began after the target was read sees its commit; a
// head below it means the commit was lost (a database crash:
// StoreReset), and such a target would keep the index from ever being
// fresh, each read asking the store again.
func (b *Mailbox) lowerTarget(t, head uint64) {
	if head < t {
		b.target.CompareAndSwap(t, head)
	}
}

// failed records a deleted mailbox; other errors leave the index as it was
// (marked stale so the next call tries again).
func (b *Mailbox) failed(err error) error {
	if errors.Is(err, store.ErrNoSuchMailbox) || errors.Is(err, store.ErrNoSelect) {
		b.mu.Lock()
		b.dead, b.loaded = true, true
		b.cols, b.sets, b.log = columns{}, flagSets{}, changeLog{}
		b.dropCaches()
		b.mu.Unlock()
		return nil
	}
	b.stale.Store(true)
	return fmt.Errorf("index of mailbox %d: %w", b.key.mailbox, err)
}

// load reads the whole mailbox; callers hold catchMu.
func (b *Mailbox) load(ctx context.Context, src store.IndexSource) error {
	target := b.target.Load()
	d, err := src.IndexDelta(ctx, b.key.mailbox, 0, 0)
	if err != nil {
		return b.failed(err)
	}
	b.lowerTarget(target, d.Head.HighestModSeq)
	var cols columns
	var sets flagSets
	var cnt counters
	cols.grow(len(d.Rows))
	for i := range d.Rows {
		r := &d.Rows[i]
		id := sets.id(r.Flags)
		cols.appendRow(r, id)
		cnt.add(sets.bit(id), r.Size, 1)
	}
	b.mu.Lock()
	b.loaded, b.dead = true, false
	b.head, b.kws = d.Head, d.Keywords
	b.lastUID = d.Head.UIDNext - 1
	b.cols, b.sets, b.count = cols, sets, cnt
	b.uidShared.Store(false)
	b.log = changeLog{floor: d.Head.HighestModSeq}
	b.dropCaches()
	b.mu.Unlock()
	return nil
}

// apply merges a catch-up delta; callers hold mu. It returns false when
// the delta does not fit the index (then the caller reloads).
func (b *Mailbox) apply(d *store.IndexDelta) bool {
	c := &b.cols
	var entries []logEntry
	for i := range d.Rows {
		r := &d.Rows[i]
		entries = append(entries, logEntry{modseq: r.ModSeq, uid: r.UID})
		set := b.sets.id(r.Flags)
		if r.UID > b.lastUID {
			if n := c.len(); n > 0 && c.uid[n-1] >= r.UID {
				return false
			}
			c.appendRow(r, set)
			b.count.add(b.sets.bit(set), r.Size, 1)
			continue
		}
		j, ok := slices.BinarySearch(c.uid, r.UID)
		if !ok {
			return false
		}
		b.setFlags(j, set, r.ModSeq)
	}
	if len(d.Expunged) > 0 {
		gone := make(map[uint32]bool, len(d.Expunged))
		for _, e := range d.Expunged {
			entries = append(entries, logEntry{modseq: e.ModSeq, uid: e.UID, expunged: true})
			gone[e.UID] = true
		}
		if b.uidShared.Load() {
			c.uid = slices.Clone(c.uid)
			b.uidShared.Store(false)
		}
		c.keep(func(i int) bool {
			if !gone[c.uid[i]] {
				return true
			}
			b.count.add(b.sets.bit(c.flags[i]), c.size[i], -1)
			b.dropCached(c.uid[i])
			return false
		})
	}
	b.log.add(entries, c.len())
	// A claim of \Recent made meanwhile may be newer than the snapshot.
	recent := max(b.head.RecentMark, d.Head.RecentMark)
	b.head, b.kws = d.Head, d.Keywords
	b.head.RecentMark = recent
	b.lastUID = max(b.lastUID, d.Head.UIDNext-1)
	return true
}

// applyOwn applies a commit's own delta (store.DeltaNotifier) if the
// index is loaded and exactly at from; d.Keywords is not set by such
// deltas, so the keyword list stays. A delta that does not fit (which
// should not happen) leaves the index to be loaded again.
func (b *Mailbox) applyOwn(from uint64, d *store.IndexDelta) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.loaded || b.dead || b.head.UIDValidity != d.Head.UIDValidity || b.head.HighestModSeq != from ||
		d.Head.HighestModSeq < from {
		return
	}
	kws := b.kws
	if !b.apply(d) {
		b.reset()
		return
	}
	b.kws = kws
}

// setFlags gives row j a new flag set and modseq, keeping the counters
// right; callers hold mu.
func (b *Mailbox) setFlags(j int, set uint32, modseq uint64) {
	c := &b.cols
	b.count.add(b.sets.bit(c.flags[j]), c.size[j], -1)
	c.flags[j], c.modseq[j] = set, modseq
	b.count.add(b.sets.bit(set), c.size[j], 1)
}

// raiseTarget moves the modseq the index must reach up to m (never down).
func (b *Mailbox) raiseTarget(m uint64) {
	for {
		cur := b.target.Load()
		if m <= cur || b.target.CompareAndSwap(cur, m) {
			return
		}
	}
}

// seenModSeq is the highest modseq the index holds or has been told of
// (0 when it is not loaded).
func (b *Mailbox) seenModSeq() uint64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.loaded {
		return 0
	}
	return max(b.head.HighestModSeq, b.target.Load())
}

// applyStore applies a STORE's own result without asking the store, when
// it is exactly the next change: the messages it changed carry its one
// new modseq (res.ModSeq), which follows the index's modseq. A message
// above the index's modseq at any other modseq was changed by another
// writer whose commit the index has not seen yet (the STORE read it); that,
// or another change in between, returns false and the caller marks the
// index stale. Callers hold mu.
func (b *Mailbox) applyStore(res *store.StoreResult) bool {
	if !b.loaded || b.dead {
		return false
	}
	var entries []logEntry
	for i := range res.Updated {
		m := &res.Updated[i]
		switch {
		case m.ModSeq <= b.head.HighestModSeq:
			continue // the index has it
		case m.ModSeq != res.ModSeq:
			return false // another writer's change, not in the index yet
		}
		entries = append(entries, logEntry{modseq: res.ModSeq, uid: m.UID})
	}
	if len(entries) == 0 {
		return true // nothing new, nothing to apply
	}
	if res.ModSeq != b.head.HighestModSeq+1 {
		return false // another change came first
	}
	modseq := res.ModSeq
	c := &b.cols
	rows := make([]int, len(entries))
	for k, e := range entries {
		j, ok := slices.BinarySearch(c.uid, e.uid)
		if !ok {
			return false
		}
		rows[k] = j
	}
	k := 0
	for i := range res.Updated {
		m := &res.Updated[i]
		if m.ModSeq != modseq {
			continue
		}
		j := rows[k]
		k++
		b.setFlags(j, b.sets.id(m.Flags), modseq)
	}
	b.log.add(entries, c.len())
	b.head.HighestModSeq = modseq
	if res.Keywords != nil {
		b.kws = res.Keywords
	}
	return true
}

// status answers STATUS/SELECT counters; callers hold mu (read).
func (b *Mailbox) status(info store.MailboxInfo) store.MailboxStatus {
	c := &b.cols
	recentFrom, _ := slices.BinarySearch(c.uid, b.head.RecentMark+1)
	st := store.MailboxStatus{
		MailboxInfo:   info,
		Messages:      uint32(c.len()),
		Unseen:        uint32(b.count.unseen),
		Deleted:       uint32(b.count.deleted),
		Recent:        uint32(c.len() - recentFrom),
		UIDNext:       b.head.UIDNext,
		HighestModSeq: b.head.HighestModSeq,
		Size:          b.count.size,
		DeletedSize:   b.count.deletedSize,
		Keywords:      b.kws,
	}
	if b.count.unseen > 0 {
		for i, set := range c.flags {
			if b.sets.bit(set)&seenBit == 0 {
				st.FirstUnseen = c.uid[i]
				break
			}
		}
	}
	return st
}

// changes answers store.Account.Changes from memory; callers hold mu
// (read). errStale when the log does not reach back to sinceModSeq.
func (b *Mailbox) changes(sinceModSeq uint64, sinceUID uint32) (store.ChangeSet, error) {
	if sinceModSeq < b.log.floor {
		return store.ChangeSet{}, errStale
	}
	c := &b.cols
	cs := store.ChangeSet{HighestModSeq: b.head.HighestModSeq, UIDNext: b.head.UIDNext, Keywords: b.kws}
	from, _ := slices.BinarySearch(c.uid, sinceUID+1)
	if sinceUID == ^uint32(0) {
		from = c.len()
	}
	for i := from; i < c.len(); i++ {
		cs.New = append(cs.New, b.meta(i))
	}
	changed, expunged := b.log.since(sinceModSeq)
	for _, uid := range changed {
		if uid > sinceUID {
			continue
		}
		if i, ok := slices.BinarySearch(c.uid, uid); ok && c.modseq[i] > sinceModSeq {
			cs.Changed = append(cs.Changed, b.meta(i))
		}
	}
	cs.Expunged = expunged
	return cs, nil
}

func (b *Mailbox) meta(i int) store.MessageMeta {
	return store.MessageMeta{UID: b.cols.uid[i], ModSeq: b.cols.modseq[i], Flags: b.sets.list(b.cols.flags[i])}
}

// bytes estimates the memory the index holds.
func (b *Mailbox) bytes() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	b.seenMu.Lock()
	seen := b.seenBytes + int64(len(b.seen))*64
	b.seenMu.Unlock()
	return int64(cap(b.cols.uid))*bytesPerMessage + int64(len(b.log.entries))*16 + int64(len(b.sets.lists))*64 +
		b.fixedBytes + int64(len(b.fixed))*48 + b.thread.size() + b.contentBytes + int64(len(b.content))*48 + b.bodiesBytes + int64(len(b.bodies))*48 + b.linesBytes + seen + 512
}

// unload drops the columns (eviction); the next use loads them again.
func (b *Mailbox) unload() {
	b.mu.Lock()
	b.reset()
	b.mu.Unlock()
}

// reset drops the columns; callers hold mu.
func (b *Mailbox) reset() {
	b.loaded = false
	b.cols, b.sets, b.log, b.count = columns{}, flagSets{}, changeLog{}, counters{}
	b.uidShared.Store(false)
	b.dropCaches()
}

// changeLog remembers, for recent modseqs, which UIDs changed or were
// expunged, so Changes costs O(changes) instead of a scan.
type changeLog struct {
	floor   uint64 // the log holds every change with modseq > floor
	entries []logEntry
}

type logEntry struct {
	modseq   uint64
	uid      uint32
	expunged bool
}

// minLog is the smallest log kept before old entries are dropped.
const minLog = 4096

// add appends one catch-up's entries (all above the log's modseqs),
// trimming the oldest half when the log outgrows max(minLog, n/4).
func (l *changeLog) add(entries []logEntry, n int) {
	slices.SortFunc(entries, func(x, y logEntry) int {
		if x.modseq != y.modseq {
			return cmpU64(x.modseq, y.modseq)
		}
		return int(x.uid) - int(y.uid)
	})
	l.entries = append(l.entries, entries...)
	if limit := max(minLog, n/4); len(l.entries) > limit {
		cut := len(l.entries) / 2
		floor := l.entries[cut-1].modseq
		for cut < len(l.entries) && l.entries[cut].modseq <= floor {
			cut++
		}
		l.floor = floor
		l.entries = slices.Clone(l.entries[cut:])
	}
}

// since returns the UIDs changed (or added) and, separately, expunged with
// a modseq above m; each ascending without duplicates.
func (l *changeLog) since(m uint64) (changed, expunged []uint32) {
	i, _ := slices.BinarySearchFunc(l.entries, m+1, func(e logEntry, t uint64) int { return cmpU64(e.modseq, t) })
	for _, e := range l.entries[i:] {
		if e.expunged {
			expunged = append(expunged, e.uid)
		} else {
			changed = append(changed, e.uid)
		}
	}
	slices.Sort(changed)
	slices.Sort(expunged)
	return slices.Compact(changed), slices.Compact(expunged)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
