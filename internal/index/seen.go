package index

import (
	"context"
	"fmt"
	"slices"

	"github.com/tern-imap/tern/internal/store"
)

// Private \Seen (store.PrivateSeenStore) of users reading another user's
// mailbox. Every read of flags by such a user (internal/store/privseen:
// FETCH FLAGS, SEARCH SEEN/UNSEEN, SELECT, STATUS UNSEEN) asks for their
// states; the store reads one row per message for that. The mailbox
// index keeps each reader's states beside the columns, tagged with the
// index's HIGHESTMODSEQ when they were read: every SetPrivateSeen takes
// a new mailbox modseq, so while the index stands at that modseq the
// copy is exact. When the index has moved on, only the states changed
// since the tag are read (PrivateSeen's sinceModSeq) and merged in;
// states of expunged messages are dropped against the UID column. A
// load of the index (or its eviction) drops the copies.

// seenCopy is one reader's states of one mailbox.
type seenCopy struct {
	modSeq uint64            // the index's HIGHESTMODSEQ they were read at (or after)
	states []store.SeenState // ascending by UID; never changed once stored
}

// seenStateBytes is the memory of one cached state.
const seenStateBytes = 16

// seenStates returns user's states of the mailbox, all of them,
// ascending by UID (shared: the caller must not change them), and counts
// a hit when no query was needed, else a miss.
func (a *account) seenStates(ctx context.Context, mailboxID int64, user string) ([]store.SeenState, error) {
	var head uint64
	var have *seenCopy
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		head, have = b.head.HighestModSeq, b.seenCopy(user)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if have != nil && have.modSeq == head {
		a.hit()
		return have.states, nil
	}
	a.miss()
	// The states changed since the copy was read are read and merged in
	// (all of them without a copy). A copy never goes wrong by the index
	// being loaded again meanwhile: its states and the delta since its
	// tag are the store's as of now.
	var since uint64
	var base []store.SeenState
	if have != nil {
		since, base = have.modSeq, have.states
	}
	rows, err := a.Account.PrivateSeen(ctx, mailboxID, user, nil, since)
	if err != nil {
		return nil, fmt.Errorf("private \\Seen of %q: %w", user, err)
	}
	merged := mergeSeen(base, rows)
	err = a.with(ctx, mailboxID, func(b *Mailbox) error {
		merged = b.keepSeen(user, head, merged)
		return nil
	})
	return merged, err
}

// seenCopy returns user's cached states or nil; callers hold the read
// lock.
func (b *Mailbox) seenCopy(user string) *seenCopy {
	b.seenMu.Lock()
	defer b.seenMu.Unlock()
	return b.seen[user]
}

// keepSeen stores user's states read at (or after) modSeq, without
// those of UIDs the index no longer holds, and returns what it stored.
// Callers hold the read lock; seenMu guards the copies (the write lock
// drops them all: dropCaches).
func (b *Mailbox) keepSeen(user string, modSeq uint64, states []store.SeenState) []store.SeenState {
	b.seenMu.Lock()
	defer b.seenMu.Unlock()
	if old := b.seen[user]; old != nil && old.modSeq >= modSeq {
		return old.states // another session stored one as new meanwhile
	}
	kept := states[:0:0]
	j := 0
	for _, s := range states {
		var ok bool
		if j, ok = b.cols.find(s.UID, j); ok {
			kept = append(kept, s)
		}
	}
	if b.seen == nil {
		b.seen = make(map[string]*seenCopy)
	}
	b.seenBytes += int64(len(kept)-b.seenLen(user)) * seenStateBytes
	b.seen[user] = &seenCopy{modSeq: modSeq, states: kept}
	return kept
}

// seenLen is the number of states cached for user; callers hold seenMu.
func (b *Mailbox) seenLen(user string) int {
	if c := b.seen[user]; c != nil {
		return len(c.states)
	}
	return 0
}

// mergeSeen returns base with newer replacing states of the same UID and
// adding the others, ascending (a new slice; base is left as it is).
func mergeSeen(base, newer []store.SeenState) []store.SeenState {
	if len(newer) == 0 {
		return base
	}
	out := make([]store.SeenState, 0, len(base)+len(newer))
	i, j := 0, 0
	for i < len(base) || j < len(newer) {
		switch {
		case j == len(newer) || (i < len(base) && base[i].UID < newer[j].UID):
			out = append(out, base[i])
			i++
		case i == len(base) || newer[j].UID < base[i].UID:
			out = append(out, newer[j])
			j++
		default: // the same UID: the newer state
			out = append(out, newer[j])
			i++
			j++
		}
	}
	return out
}

// PrivateSeen answers from the index's copy of user's states; the store
// answers when the index cannot.
func (a *account) PrivateSeen(ctx context.Context, mailboxID int64, user string, uids []uint32, sinceModSeq uint64) ([]store.SeenState, error) {
	all, err := a.seenStates(ctx, mailboxID, user)
	if err != nil {
		return a.Account.PrivateSeen(ctx, mailboxID, user, uids, sinceModSeq)
	}
	out := make([]store.SeenState, 0, min(len(all), max(len(uids), 16)))
	keep := func(s store.SeenState) {
		if s.ModSeq > sinceModSeq {
			out = append(out, s)
		}
	}
	if uids == nil {
		for _, s := range all {
			keep(s)
		}
		return out, nil
	}
	for _, u := range ascending(uids) {
		if i, ok := slices.BinarySearchFunc(all, u, func(s store.SeenState, u uint32) int { return cmpUID(s.UID, u) }); ok {
			keep(all[i])
		}
	}
	return out, nil
}

// PrivateSeenCount counts from the index's copy of user's states and its
// UID column.
func (a *account) PrivateSeenCount(ctx context.Context, mailboxID int64, user string) (seen, firstUnseen uint32, err error) {
	all, err := a.seenStates(ctx, mailboxID, user)
	if err == nil {
		err = a.with(ctx, mailboxID, func(b *Mailbox) error {
			seen, firstUnseen = countSeen(b.cols.uid, all)
			return nil
		})
	}
	if err != nil {
		return a.Account.PrivateSeenCount(ctx, mailboxID, user)
	}
	return seen, firstUnseen, nil
}

// countSeen returns how many of uids the states mark seen and the lowest
// of uids they do not (0: none); both ascending.
func countSeen(uids []uint32, states []store.SeenState) (seen, firstUnseen uint32) {
	j := 0
	for _, u := range uids {
		for j < len(states) && states[j].UID < u {
			j++
		}
		if j < len(states) && states[j].UID == u && states[j].Seen {
			seen++
		} else if firstUnseen == 0 {
			firstUnseen = u
		}
	}
	return seen, firstUnseen
}

// SetPrivateSeen passes the write to the store; the mailbox's modseq
// moves, so the next read takes the change into the copy.
func (a *account) SetPrivateSeen(ctx context.Context, mailboxID int64, user string, uids []uint32, seen bool) ([]store.SeenState, error) {
	res, err := a.Account.SetPrivateSeen(ctx, mailboxID, user, uids, seen)
	a.touch(mailboxID)
	return res, err
}

func cmpUID(x, y uint32) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
