package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tern-imap/tern/internal/store"
)

// account answers reads from the indexes and passes writes to the store,
// marking the mailboxes they touch stale.
type account struct {
	store.Account
	src store.IndexSource
	x   *Indexes
	id  int64
}

// indexWant is what the index can fill in a store.Message.
const indexWant = store.WantFlags | store.WantDates | store.WantSize | store.WantIDs

// fetchChunk is how many messages are copied out under the index's read
// lock at a time: callbacks (which write to the network) run unlocked.
const fetchChunk = 256

// messageChunks recycles Fetch's chunks of messages: making one per call
// was the largest allocation of all under imaptest (fifteen percent of the
// bytes; a store.Message is over 300 bytes). Callbacks never keep a
// message past their return (Fetch reuses the chunk already).
var messageChunks = sync.Pool{New: func() any { return new([fetchChunk]store.Message) }}

// maxRetries bounds how often a read retries an index evicted under it.
const maxRetries = 3

var errEvicted = errors.New("index evicted meanwhile")

// with runs fn on the up-to-date index of a mailbox under its read lock.
func (a *account) with(ctx context.Context, mailboxID int64, fn func(b *Mailbox) error) error {
	for range maxRetries {
		b := a.x.box(a.User(), a.id, mailboxID)
		wasLoaded := b.isLoaded()
		if err := b.sync(ctx, a.src); err != nil {
			return err
		}
		if !wasLoaded {
			a.x.loads.Add(1)
			a.x.evict(b)
		}
		err := b.read(fn)
		if !errors.Is(err, errEvicted) {
			return err
		}
	}
	return errStale
}

func (b *Mailbox) isLoaded() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.loaded
}

// read runs fn under the read lock if the index is loaded and alive.
func (b *Mailbox) read(fn func(b *Mailbox) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case !b.loaded:
		return errEvicted
	case b.dead:
		return fmt.Errorf("mailbox %d: %w", b.key.mailbox, store.ErrNoSuchMailbox)
	}
	return fn(b)
}

// check compares the index with a mailbox head just read from the store:
// a new UIDVALIDITY means a reload, a higher modseq a catch-up.
func (b *Mailbox) check(h *store.MailboxHead) {
	b.mu.Lock()
	if b.loaded && !b.dead && b.head.UIDValidity != h.UIDValidity {
		b.loaded = false
	}
	if h.RecentMark > b.head.RecentMark {
		b.head.RecentMark = h.RecentMark
	}
	b.mu.Unlock()
	b.raiseTarget(h.HighestModSeq)
}

// hit and miss count a read answered from memory or passed to the store.
func (a *account) hit()  { a.x.hits.Add(1) }
func (a *account) miss() { a.x.misses.Add(1) }

// touch marks the index of a mailbox stale after a write through it.
func (a *account) touch(ids ...int64) {
	for _, id := range ids {
		if b := a.x.peek(a.User(), a.id, id); b != nil {
			b.stale.Store(true)
		}
	}
}

// touchUnless marks the index of a mailbox stale after a write through
// it, unless the index is loaded and done says it already shows the write
// (the backend's own delta was applied: store.DeltaNotifier).
func (a *account) touchUnless(id int64, done func(b *Mailbox) bool) {
	b := a.x.peek(a.User(), a.id, id)
	if b == nil {
		return
	}
	b.mu.RLock()
	ok := b.loaded && !b.dead && done(b)
	b.mu.RUnlock()
	if !ok {
		b.stale.Store(true)
	}
}

// holdsThrough reports whether the index has seen UID uid arrive.
func holdsThrough(uid uint32) func(b *Mailbox) bool {
	return func(b *Mailbox) bool { return b.lastUID >= uid }
}

// holdsNone reports whether none of uids is in the index any more.
func holdsNone(uids []uint32) func(b *Mailbox) bool {
	return func(b *Mailbox) bool {
		for _, u := range uids {
			if _, found := slices.BinarySearch(b.cols.uid, u); found {
				return false
			}
		}
		return true
	}
}

// applyStore updates the index with a STORE's own result where it can
// (Mailbox.applyStore); false means the caller must mark it stale. A
// result of a STORE that began before a StoreReset (resets: the count
// then) is not applied: the database may have lost it since.
func (a *account) applyStore(mailboxID int64, resets uint64, res *store.StoreResult) bool {
	b := a.x.peek(a.User(), a.id, mailboxID)
	if b == nil {
		return true // not loaded: its first use loads the store's state
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return a.x.resets.Load() == resets && b.applyStore(res)
}

// touchAll marks every index of this user stale (DELETE, RENAME).
func (a *account) touchAll() {
	a.x.mu.Lock()
	defer a.x.mu.Unlock()
	for k, b := range a.x.boxes {
		if k.user == a.User() {
			b.stale.Store(true)
		}
	}
}

// freshHead reads a mailbox's head (by id, or by name when id is 0) from
// the store and has the index catch up to it before its next answer;
// false when the store cannot tell (an error, a \Noselect mailbox), and
// the caller asks the store itself.
func (a *account) freshHead(ctx context.Context, id int64, name string) (store.MailboxHead, bool) {
	h, err := a.src.MailboxHead(ctx, id, name)
	if err != nil || h.NoSelect {
		return h, false
	}
	a.x.box(a.User(), a.id, h.ID).check(&h)
	return h, true
}

func (a *account) Status(ctx context.Context, name string) (store.MailboxStatus, error) {
	h, ok := a.freshHead(ctx, 0, name)
	if !ok {
		a.miss()
		return a.Account.Status(ctx, name) // the store's own error
	}
	var st store.MailboxStatus
	err := a.with(ctx, h.ID, func(b *Mailbox) error {
		st = b.status(h.MailboxInfo)
		return nil
	})
	if err != nil {
		a.miss()
		return a.Account.Status(ctx, name)
	}
	a.hit()
	return st, nil
}

func (a *account) Snapshot(ctx context.Context, mailboxID int64) (store.MailboxStatus, []uint32, error) {
	h, ok := a.freshHead(ctx, mailboxID, "")
	if !ok {
		a.miss()
		return a.Account.Snapshot(ctx, mailboxID)
	}
	var st store.MailboxStatus
	var uids []uint32
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		st = b.status(h.MailboxInfo)
		// Shared, not copied: every session on a large mailbox would
		// hold its own copy of the UID list (uidShared).
		uids = slices.Clip(b.cols.uid)
		b.uidShared.Store(true)
		return nil
	})
	if err != nil {
		a.miss()
		return a.Account.Snapshot(ctx, mailboxID)
	}
	a.hit()
	return st, uids, nil
}

func (a *account) Changes(ctx context.Context, mailboxID int64, sinceModSeq uint64, sinceUID uint32) (store.ChangeSet, error) {
	var cs store.ChangeSet
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		var err error
		cs, err = b.changes(sinceModSeq, sinceUID)
		return err
	})
	if errors.Is(err, errStale) {
		a.miss()
		cs, err = a.Account.Changes(ctx, mailboxID, sinceModSeq, sinceUID)
		a.saw(mailboxID, cs.HighestModSeq)
		return cs, err
	}
	if err == nil {
		a.hit()
	}
	return cs, err
}

func (a *account) Fetch(ctx context.Context, mailboxID int64, uids []uint32, want store.Want, fn func(*store.Message) error) error {
	uids = ascending(uids)
	storeRead := false // the content cache was filled from the store
	switch {
	case threadCacheable(want):
		read, err := a.fillThread(ctx, mailboxID, uids)
		if errors.Is(err, errFixedTooBig) {
			a.miss()
			return a.storeFetch(ctx, mailboxID, uids, want, fn)
		}
		if err != nil {
			return err
		}
		storeRead = read
	case cacheable(want):
		err := a.fillFixed(ctx, mailboxID, uids)
		if errors.Is(err, errFixedTooBig) {
			a.miss()
			return a.storeFetch(ctx, mailboxID, uids, want, fn)
		}
		if err != nil {
			return err
		}
	case want&^indexWant == 0:
	case contentCacheable(want, len(uids)):
		read, err := a.fillContent(ctx, mailboxID, uids)
		if err != nil {
			return err
		}
		storeRead = read
	default:
		a.miss()
		return a.storeFetch(ctx, mailboxID, uids, want, fn)
	}
	fromFixed, fromThread := cacheable(want), threadCacheable(want)
	chunk := messageChunks.Get().(*[fetchChunk]store.Message)
	msgs := chunk[:min(len(uids), fetchChunk)]
	defer func() {
		clear(msgs) // let go of what the messages referred to
		messageChunks.Put(chunk)
	}()
	for next := 0; next < len(uids); {
		n := 0
		err := a.with(ctx, mailboxID, func(b *Mailbox) error {
			j, t := 0, 0
			for ; next < len(uids) && n < fetchChunk; next++ {
				var ok bool
				if j, ok = b.cols.find(uids[next], j); !ok {
					continue
				}
				msgs[n] = store.Message{}
				switch {
				case fromThread:
					if t, ok = b.thread.find(uids[next], t); !ok {
						return errStale // the cache was emptied meanwhile
					}
					b.thread.fill(&msgs[n], t, want)
				case fromFixed && want&fixedWant != 0:
					f := b.fixed[uids[next]]
					if f == nil {
						return errStale // the cache was evicted meanwhile
					}
					f.fill(&msgs[n], want)
				case want&contentWant != 0:
					c := b.content[uids[next]]
					if c == nil {
						return errStale // the cache was emptied meanwhile
					}
					c.fill(&msgs[n], want)
				}
				b.cols.fill(&msgs[n], j, want, &b.sets)
				n++
			}
			return nil
		})
		if errors.Is(err, errStale) {
			for i := range n { // what was copied before the index gave up
				if err := fn(&msgs[i]); err != nil {
					return err
				}
			}
			a.miss()
			return a.storeFetch(ctx, mailboxID, uids[next:], want, fn)
		}
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		for i := range n {
			if err := fn(&msgs[i]); err != nil {
				return err
			}
		}
	}
	if storeRead {
		a.miss()
	} else {
		a.hit()
	}
	return nil
}

// noneDeleted reports whether no message of uids (all when nil) is
// flagged \Deleted, from the index caught up with the mailbox's head as
// the store has it now: an EXPUNGE that would remove nothing then needs no
// write transaction (clients send EXPUNGE after every few commands). A
// \Deleted committed by any writer before this call is seen; false when
// the index cannot tell. The index is asked first as it stands, so an
// EXPUNGE with something to remove costs no read of the head.
func (a *account) noneDeleted(ctx context.Context, mailboxID int64, uids []uint32) bool {
	if !a.indexShowsNoneDeleted(ctx, mailboxID, uids, 0) {
		return false
	}
	h, ok := a.freshHead(ctx, mailboxID, "")
	return ok && a.indexShowsNoneDeleted(ctx, mailboxID, uids, h.HighestModSeq)
}

// indexShowsNoneDeleted reports whether the index, at modseq atLeast or
// later, shows no message of uids (all when nil) flagged \Deleted.
func (a *account) indexShowsNoneDeleted(ctx context.Context, mailboxID int64, uids []uint32, atLeast uint64) bool {
	none := false
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		if b.dead || b.head.HighestModSeq < atLeast {
			return nil
		}
		none = b.count.deleted == 0
		if none || uids == nil {
			return nil
		}
		j := 0
		for _, u := range ascending(uids) {
			var ok bool
			if j, ok = b.cols.find(u, j); ok && b.sets.bit(b.cols.flags[j])&deletedBit != 0 {
				return nil
			}
		}
		none = true
		return nil
	})
	return err == nil && none
}

// storeFetch reads messages from the store instead of the index.
func (a *account) storeFetch(ctx context.Context, mailboxID int64, uids []uint32, want store.Want, fn func(*store.Message) error) error {
	var newest uint64
	err := a.Account.Fetch(ctx, mailboxID, uids, want, func(m *store.Message) error {
		newest = max(newest, m.ModSeq)
		return fn(m)
	})
	a.saw(mailboxID, newest)
	return err
}

// saw records that the session was just shown the mailbox at modseq m
// read from the store itself. The store may be ahead of the index: a
// commit is visible before its writer's notification reaches the index
// (a group commit's fsync runs in between). The index then catches up
// before it answers again, so the session never sees a message go back to
// an older state (its MODSEQ drop: RFC 7162 §3.1.1).
func (a *account) saw(mailboxID int64, m uint64) {
	if b := a.x.peek(a.User(), a.id, mailboxID); b != nil {
		b.raiseTarget(m)
	}
}

// ClaimRecent answers from the index when the mailbox's recent mark
// already covers upTo. Otherwise one claim per mailbox at a time goes to
// the store: the sessions IDLE on a mailbox all wake up for one new
// message and would each run a write transaction for it (1,000 idlers of
// one user: 1,000 claims queued on that user's write lock); the others
// wait for the first and then find the mark moved past their upTo.
func (a *account) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	b := a.x.peek(a.User(), a.id, mailboxID)
	for b != nil {
		b.mu.Lock()
		if b.loaded && !b.dead && b.head.RecentMark >= upTo {
			b.mu.Unlock()
			return upTo + 1, nil
		}
		wait := b.claiming
		if wait == nil {
			b.claiming = make(chan struct{})
			b.mu.Unlock()
			break
		}
		b.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, fmt.Errorf("claim recent: %w", ctx.Err())
		}
	}
	first, err := a.Account.ClaimRecent(ctx, mailboxID, upTo)
	if b != nil {
		b.mu.Lock()
		if err == nil {
			// The store claimed up to min(upTo, its UIDNEXT-1), which is at
			// least this.
			b.head.RecentMark = max(b.head.RecentMark, min(upTo, b.lastUID))
		}
		close(b.claiming)
		b.claiming = nil
		b.mu.Unlock()
	}
	return first, err
}

func (a *account) Append(ctx context.Context, mailbox string, msgs []store.NewMessage) (store.AppendResult, error) {
	res, err := a.Account.Append(ctx, mailbox, msgs)
	if err != nil || len(res.UIDs) == 0 {
		a.touch(res.MailboxID)
	} else {
		a.touchUnless(res.MailboxID, holdsThrough(res.UIDs[len(res.UIDs)-1]))
	}
	return res, err
}

func (a *account) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64, hasUnchangedSince bool) (store.StoreResult, error) {
	resets := a.x.resets.Load()
	res, err := a.Account.StoreFlags(ctx, mailboxID, uids, op, flags, unchangedSince, hasUnchangedSince)
	if err != nil || !a.applyStore(mailboxID, resets, &res) {
		a.touch(mailboxID)
	}
	return res, err
}

func (a *account) Expunge(ctx context.Context, mailboxID int64, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	if onlyDeleted && a.noneDeleted(ctx, mailboxID, uids) {
		a.hit()
		return nil, nil
	}
	out, err := a.Account.Expunge(ctx, mailboxID, uids, onlyDeleted)
	if err != nil {
		a.touch(mailboxID)
	} else {
		a.touchUnless(mailboxID, holdsNone(out))
	}
	return out, err
}

func (a *account) Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	res, err := a.Account.Copy(ctx, srcMailboxID, uids, dest)
	a.touch(res.DestMailboxID)
	return res, err
}

func (a *account) Move(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	res, err := a.Account.Move(ctx, srcMailboxID, uids, dest)
	if err != nil || res.DestMailboxID == srcMailboxID {
		a.touch(srcMailboxID, res.DestMailboxID)
	} else {
		a.touchUnless(srcMailboxID, holdsNone(res.SrcUIDs))
		a.touch(res.DestMailboxID)
	}
	return res, err
}

func (a *account) DeleteMailbox(ctx context.Context, name string) error {
	err := a.Account.DeleteMailbox(ctx, name)
	a.touchAll()
	return err
}

func (a *account) RenameMailbox(ctx context.Context, oldName, newName string) error {
	err := a.Account.RenameMailbox(ctx, oldName, newName)
	a.touchAll()
	return err
}

// ascending returns uids sorted without duplicates (a copy if needed).
func ascending(uids []uint32) []uint32 {
	for i := 1; i < len(uids); i++ {
		if uids[i] <= uids[i-1] {
			out := slices.Clone(uids)
			slices.Sort(out)
			return slices.Compact(out)
		}
	}
	return uids
}
