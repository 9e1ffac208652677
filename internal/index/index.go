// Package index is tern's shared in-memory mailbox index: one compact,
// column-laid index per mailbox in use, shared by every session of that
// mailbox in the process, in front of the store.
//
// The store stays the only truth. An index is loaded from the store on
// first use and is a cache validated by modseq: every committed change
// reaches the Indexes as a notification "mailbox X reached modseq M"
// (from this process's backend, or from other processes through the
// notify socket). A commit made through this process's backend usually
// hands over its own change first (store.DeltaNotifier: MailboxDelta),
// which the index applies directly when it is exactly where the commit
// started; otherwise, and for other processes' changes, the mailbox is
// stale and the next read catches up with one IndexDelta query that
// costs O(changes). Sessions then resolve SELECT, STATUS, Changes and
// FETCH/SEARCH/SORT of flags, sizes, dates and object ids from memory.
//
// Wiring: New(hub) is the backend's Notifier (it forwards to hub), and
// Wrap(backend) is the store.Store the server uses.
package index

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/tern-imap/tern/internal/store"
)

// DefaultMemoryBudget bounds the memory of all indexes when Options
// leaves it 0: about 3.5 million messages' worth.
const DefaultMemoryBudget = 256 << 20

// Options configures Indexes.
type Options struct {
	// MemoryBudget is the most memory (bytes) the indexes may hold; the
	// least recently used mailboxes are evicted beyond it. 0: default.
	MemoryBudget int64
	Logger       *slog.Logger
}

// Indexes is the registry of mailbox indexes of one process. It implements
// store.Notifier (and store.MailboxListNotifier), forwarding to next.
type Indexes struct {
	next   store.Notifier
	budget int64
	log    *slog.Logger
	clock  atomic.Int64

	// Reads answered from memory (hits) and passed to the store (misses),
	// and whole-mailbox loads (first use, after eviction, new UIDVALIDITY).
	hits, misses, loads atomic.Uint64
	// bodyBytes is what every mailbox's body cache holds (bodies.go).
	bodyBytes atomic.Int64
	// resets counts StoreReset calls: a write's own result that was read
	// from the store before one is not applied after it.
	resets atomic.Uint64

	mu    sync.Mutex
	boxes map[boxKey]*Mailbox
}

type boxKey struct {
	user    string
	mailbox int64
}

// New returns an empty registry that forwards notifications to next
// (which may be nil).
func New(next store.Notifier, opts Options) *Indexes {
	if opts.MemoryBudget <= 0 {
		opts.MemoryBudget = DefaultMemoryBudget
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Indexes{next: next, budget: opts.MemoryBudget, log: opts.Logger, boxes: make(map[boxKey]*Mailbox)}
}

// MailboxChanged implements store.Notifier: the index of the mailbox, if
// loaded, will catch up before its next answer; then the hub is told.
func (x *Indexes) MailboxChanged(user string, mailboxID int64, modSeq uint64) {
	x.mu.Lock()
	b := x.boxes[boxKey{user, mailboxID}]
	x.mu.Unlock()
	if b != nil {
		b.raiseTarget(modSeq)
	}
	if x.next != nil {
		x.next.MailboxChanged(user, mailboxID, modSeq)
	}
}

// MailboxDelta implements store.DeltaNotifier: a commit made through this
// process's backend is applied to the mailbox's index directly when the
// index is exactly where the commit started; otherwise it is ignored and
// the MailboxChanged that follows makes the index catch up.
func (x *Indexes) MailboxDelta(user string, acctID, mailboxID int64, from uint64, d *store.IndexDelta) {
	if b := x.peek(user, acctID, mailboxID); b != nil {
		b.applyOwn(from, d)
	}
}

// StoreReset implements store.ResetNotifier: the database may have
// undone commits the indexes show (a PostgreSQL crash loses relaxed
// commits) and will give their modseqs to other changes, so no index can
// be validated by modseq any more. Every index is dropped, as eviction
// does; the next use of a mailbox loads it from the store. A read under
// way keeps the index it holds for its one answer, as if it had run just
// before.
func (x *Indexes) StoreReset() {
	x.resets.Add(1)
	n := x.drop(func(boxKey) bool { return true })
	x.log.Info("mailbox indexes dropped: the store may have lost commits", "mailboxes", n)
	if n, ok := x.next.(store.ResetNotifier); ok {
		n.StoreReset()
	}
}

// WatchedMailboxes implements store.WatchLister: the mailboxes next (the
// hub) lists, each with the modseq its index has reached or been told
// of (0 when it has no index loaded).
func (x *Indexes) WatchedMailboxes() []store.WatchedMailbox {
	wl, ok := x.next.(store.WatchLister)
	if !ok {
		return nil
	}
	out := wl.WatchedMailboxes()
	boxes := make([]*Mailbox, len(out))
	x.mu.Lock()
	for i, w := range out {
		boxes[i] = x.boxes[boxKey{w.User, w.MailboxID}]
	}
	x.mu.Unlock()
	for i, b := range boxes {
		if b != nil {
			out[i].ModSeq = b.seenModSeq()
		}
	}
	return out
}

// WatchedUsers implements store.UserWatchLister: the users next (the
// hub) lists.
func (x *Indexes) WatchedUsers() []string {
	if wl, ok := x.next.(store.UserWatchLister); ok {
		return wl.WatchedUsers()
	}
	return nil
}

// MailboxListChanged implements store.MailboxListNotifier.
func (x *Indexes) MailboxListChanged(user string) {
	if n, ok := x.next.(store.MailboxListNotifier); ok {
		n.MailboxListChanged(user)
	}
}

// ACLChanged implements store.ACLNotifier.
func (x *Indexes) ACLChanged(owner, identifier string) {
	if n, ok := x.next.(store.ACLNotifier); ok {
		n.ACLChanged(owner, identifier)
	}
}

// Stats describe the indexes of a process at one moment.
type Stats struct {
	Mailboxes int   // mailboxes with a loaded index
	Bytes     int64 // estimated memory of all loaded indexes
	// Hits counts reads (Status, Snapshot, Changes, Fetch, and EXPUNGEs
	// with nothing to remove) answered from memory, Misses those the index
	// passed to the store.
	Hits, Misses uint64
	Loads        uint64 // whole-mailbox loads from the store
}

// Stats returns the current size and the read counters. It takes each
// loaded mailbox's read lock briefly; meant for a metrics scrape.
func (x *Indexes) Stats() Stats {
	x.mu.Lock()
	boxes := make([]*Mailbox, 0, len(x.boxes))
	for _, b := range x.boxes {
		boxes = append(boxes, b)
	}
	x.mu.Unlock()
	st := Stats{Hits: x.hits.Load(), Misses: x.misses.Load(), Loads: x.loads.Load()}
	for _, b := range boxes {
		if b.isLoaded() {
			st.Mailboxes++
			st.Bytes += b.bytes()
		}
	}
	return st
}

// box returns the registered index of a mailbox, creating an empty one.
// An index built for another account of the same name (a user deleted
// and created again) is replaced.
func (x *Indexes) box(user string, acctID, mailboxID int64) *Mailbox {
	k := boxKey{user, mailboxID}
	x.mu.Lock()
	b := x.boxes[k]
	var replaced *Mailbox
	if b == nil || b.acctID != acctID {
		replaced = b
		b = &Mailbox{key: k, acctID: acctID, bodyTotal: &x.bodyBytes}
		x.boxes[k] = b
	}
	x.mu.Unlock()
	if replaced != nil {
		replaced.unload() // its body cache leaves the total
	}
	b.lastUse.Store(x.clock.Add(1))
	return b
}

// peek returns the registered index of a mailbox or nil.
func (x *Indexes) peek(user string, acctID, mailboxID int64) *Mailbox {
	x.mu.Lock()
	defer x.mu.Unlock()
	if b := x.boxes[boxKey{user, mailboxID}]; b != nil && b.acctID == acctID {
		return b
	}
	return nil
}

// dropUser forgets every index of a user (DeleteUser).
func (x *Indexes) dropUser(user string) {
	x.drop(func(k boxKey) bool { return k.user == user })
}

// drop forgets the indexes whose keys match and unloads them, as
// eviction does (their body caches leave the total), and returns how
// many it dropped.
func (x *Indexes) drop(match func(boxKey) bool) int {
	var gone []*Mailbox
	x.mu.Lock()
	for k, b := range x.boxes {
		if match(k) {
			gone = append(gone, b)
			delete(x.boxes, k)
		}
	}
	x.mu.Unlock()
	for _, b := range gone {
		b.unload()
	}
	return len(gone)
}

// dropReader forgets the private \Seen copies of a user on other users'
// mailboxes (DeleteUser: the store drops their states without moving
// those mailboxes' modseqs).
func (x *Indexes) dropReader(user string) {
	x.mu.Lock()
	boxes := make([]*Mailbox, 0, len(x.boxes))
	for _, b := range x.boxes {
		boxes = append(boxes, b)
	}
	x.mu.Unlock()
	for _, b := range boxes {
		b.mu.Lock()
		if c := b.seen[user]; c != nil {
			b.seenBytes -= int64(len(c.states)) * seenStateBytes
			delete(b.seen, user)
		}
		b.mu.Unlock()
	}
}

// evict unloads the least recently used indexes while the total exceeds
// the budget, never keep itself.
func (x *Indexes) evict(keep *Mailbox) {
	x.mu.Lock()
	boxes := make([]*Mailbox, 0, len(x.boxes))
	for _, b := range x.boxes {
		boxes = append(boxes, b)
	}
	x.mu.Unlock()
	var total int64
	sizes := make(map[*Mailbox]int64, len(boxes))
	for _, b := range boxes {
		sizes[b] = b.bytes()
		total += sizes[b]
	}
	for total > x.budget {
		var lru *Mailbox
		for _, b := range boxes {
			if b != keep && sizes[b] > 0 && (lru == nil || b.lastUse.Load() < lru.lastUse.Load()) {
				lru = b
			}
		}
		if lru == nil {
			return
		}
		x.mu.Lock()
		if x.boxes[lru.key] == lru {
			delete(x.boxes, lru.key)
		}
		x.mu.Unlock()
		lru.unload()
		x.log.Debug("mailbox index evicted", "user", lru.key.user, "mailbox", lru.key.mailbox, "bytes", sizes[lru], "budget", x.budget)
		total -= sizes[lru]
		sizes[lru] = 0
	}
}

// Wrap returns st with every Account answering reads from the indexes.
// Backends whose Accounts do not implement store.IndexSource pass
// through unchanged.
func (x *Indexes) Wrap(st store.Store) store.Store {
	return &indexedStore{Store: st, x: x}
}

type indexedStore struct {
	store.Store
	x *Indexes
}

func (s *indexedStore) Account(ctx context.Context, user string) (store.Account, error) {
	a, err := s.Store.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	src, ok := a.(store.IndexSource)
	if !ok {
		return a, nil
	}
	return &account{Account: a, src: src, x: s.x, id: src.AccountID()}, nil
}

func (s *indexedStore) DeleteUser(ctx context.Context, name string) error {
	err := s.Store.DeleteUser(ctx, name)
	s.x.dropUser(name)
	s.x.dropReader(name)
	return err
}
