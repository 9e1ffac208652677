// Package privseen gives a user who is not a mailbox's owner their own
// \Seen on the owner's mailboxes (RFC 4314 §5.2, as Dovecot and Cyrus do).
//
// Wrap(owner's account, user) is the owner's store.Account as user sees
// it: every read of flags takes the messages' shared flags without
// \Seen and adds user's own \Seen (store.PrivateSeenStore); a message's
// modseq is the larger of its own and that of user's last \Seen change
// on it, so CONDSTORE/QRESYNC see each user's changes and only those;
// SELECT and STATUS count user's unseen messages. Writes of \Seen go to
// user's state, every other flag to the message. The owner's \Seen stays
// the messages' own flag, which the owner's account (and the shared
// mailbox index under it) keeps seeing unchanged: the index holds only
// the owner's view, and the overlay is applied above it per session, so
// one user's \Seen never reaches another through the index.
package privseen

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tern-imap/tern/internal/store"
)

const seenFlag = `\Seen`

type account struct {
	store.Account
	user string
}

// Wrap returns owner as user sees it; owner itself when user owns it.
func Wrap(owner store.Account, user string) store.Account {
	if owner.User() == user {
		return owner
	}
	return &account{Account: owner, user: user}
}

// withoutSeen returns flags without \Seen and whether it was there.
func withoutSeen(flags []string) ([]string, bool) {
	i := slices.IndexFunc(flags, isSeen)
	if i < 0 {
		return flags, false
	}
	return slices.DeleteFunc(slices.Clone(flags), isSeen), true
}

func isSeen(f string) bool { return strings.EqualFold(f, seenFlag) }

// withSeen returns a message's flags (store.MessageMeta order: system
// flags by name, then keywords) with \Seen as seen says. It never
// changes flags, which a cache may share.
func withSeen(flags []string, seen bool) []string {
	out, _ := withoutSeen(flags)
	if !seen {
		return out
	}
	// Every system flag but \Seen sorts before it; keywords have no "\".
	i := 0
	for i < len(out) && strings.HasPrefix(out[i], `\`) {
		i++
	}
	return slices.Insert(slices.Clone(out), i, seenFlag)
}

// states returns user's states among uids (nil: all).
func (a *account) states(ctx context.Context, mailboxID int64, uids []uint32, since uint64) (*seenStates, error) {
	rows, err := a.PrivateSeen(ctx, mailboxID, a.user, uids, since)
	if err != nil {
		return nil, fmt.Errorf("\\Seen of %q: %w", a.user, err)
	}
	return &seenStates{rows: rows}, nil
}

// seenStates looks up states (ascending by UID, as PrivateSeen returns
// them) by UID; a UID without one is unseen (the zero state). Lookups in
// ascending order, the common case (FETCH, SEARCH), take no search.
type seenStates struct {
	rows []store.SeenState
	next int
}

func (s *seenStates) of(uid uint32) store.SeenState {
	if s.next < len(s.rows) && s.rows[s.next].UID == uid {
		s.next++
		return s.rows[s.next-1]
	}
	i, ok := slices.BinarySearchFunc(s.rows, uid, func(r store.SeenState, u uint32) int { return cmpUID(r.UID, u) })
	if !ok {
		s.next = i
		return store.SeenState{}
	}
	s.next = i + 1
	return s.rows[i]
}

// apply makes a message's flags and modseq user's.
func apply(flags *[]string, modseq *uint64, s store.SeenState) {
	*flags = withSeen(*flags, s.Seen)
	*modseq = max(*modseq, s.ModSeq)
}

func (a *account) Fetch(ctx context.Context, mailboxID int64, uids []uint32, want store.Want, fn func(*store.Message) error) error {
	if want&store.WantFlags == 0 {
		return a.Account.Fetch(ctx, mailboxID, uids, want, fn)
	}
	st, err := a.states(ctx, mailboxID, uids, 0)
	if err != nil {
		return err
	}
	return a.Account.Fetch(ctx, mailboxID, uids, want, func(m *store.Message) error {
		apply(&m.Flags, &m.ModSeq, st.of(m.UID))
		return fn(m)
	})
}

// countUnseen sets st's unseen counters for user (counting queries: the
// states of messages that exist are the only ones kept).
func (a *account) countUnseen(ctx context.Context, st *store.MailboxStatus) error {
	seen, firstUnseen, err := a.PrivateSeenCount(ctx, st.ID, a.user)
	if err != nil {
		return fmt.Errorf("\\Seen of %q: %w", a.user, err)
	}
	st.Unseen = st.Messages - min(seen, st.Messages)
	st.FirstUnseen = firstUnseen
	return nil
}

func (a *account) Snapshot(ctx context.Context, mailboxID int64) (store.MailboxStatus, []uint32, error) {
	st, uids, err := a.Account.Snapshot(ctx, mailboxID)
	if err != nil {
		return st, uids, err
	}
	return st, uids, a.countUnseen(ctx, &st)
}

func (a *account) Status(ctx context.Context, name string) (store.MailboxStatus, error) {
	st, err := a.Account.Status(ctx, name)
	if err != nil || st.NoSelect {
		return st, err
	}
	return st, a.countUnseen(ctx, &st)
}

func (a *account) Changes(ctx context.Context, mailboxID int64, sinceModSeq uint64, sinceUID uint32) (store.ChangeSet, error) {
	cs, err := a.Account.Changes(ctx, mailboxID, sinceModSeq, sinceUID)
	if err != nil {
		return cs, err
	}
	// Messages whose \Seen user changed since, beside those that
	// changed for everyone.
	mine, err := a.states(ctx, mailboxID, nil, sinceModSeq)
	if err != nil {
		return cs, err
	}
	reported := make([]uint32, 0, len(cs.New)+len(cs.Changed))
	for _, lists := range [][]store.MessageMeta{cs.New, cs.Changed} {
		for _, m := range lists {
			reported = append(reported, m.UID)
		}
	}
	st := &seenStates{}
	if len(reported) > 0 {
		if st, err = a.states(ctx, mailboxID, reported, 0); err != nil {
			return cs, err
		}
	}
	for _, lists := range [][]store.MessageMeta{cs.New, cs.Changed} {
		for i := range lists {
			apply(&lists[i].Flags, &lists[i].ModSeq, st.of(lists[i].UID))
		}
	}
	var more []uint32
	for _, r := range mine.rows {
		u := r.UID
		if u > sinceUID {
			continue // in New
		}
		if _, found := slices.BinarySearchFunc(cs.Changed, u, func(m store.MessageMeta, u uint32) int { return cmpUID(m.UID, u) }); !found {
			more = append(more, u)
		}
	}
	if len(more) == 0 {
		return cs, nil
	}
	slices.Sort(more)
	err = a.Fetch(ctx, mailboxID, more, store.WantFlags, func(m *store.Message) error {
		cs.Changed = append(cs.Changed, store.MessageMeta{UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags})
		return nil
	})
	slices.SortFunc(cs.Changed, func(x, y store.MessageMeta) int { return cmpUID(x.UID, y.UID) })
	return cs, err
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

func (a *account) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64, hasUnchangedSince bool) (store.StoreResult, error) {
	var res store.StoreResult
	shared, seen := withoutSeen(flags)
	if hasUnchangedSince {
		// Modified for user: a message whose shared flags or whose \Seen
		// of user changed after unchangedSince. The store checks the
		// shared flags again as it writes.
		mod := map[uint32]bool{}
		err := a.Fetch(ctx, mailboxID, uids, store.WantFlags, func(m *store.Message) error {
			if m.ModSeq > unchangedSince {
				mod[m.UID] = true
				res.Modified = append(res.Modified, m.UID)
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		uids = slices.DeleteFunc(slices.Clone(uids), func(u uint32) bool { return mod[u] })
	}
	if len(shared) > 0 || op == store.FlagsReplace {
		sharedOp := op
		if op == store.FlagsReplace {
			sharedOp = store.FlagsReplaceKeepSeen
		}
		r, err := a.Account.StoreFlags(ctx, mailboxID, uids, sharedOp, shared, unchangedSince, hasUnchangedSince)
		if err != nil {
			return res, err
		}
		res.Modified = append(res.Modified, r.Modified...)
		res.Keywords = r.Keywords
		uids = make([]uint32, len(r.Updated))
		for i, m := range r.Updated {
			uids[i] = m.UID
		}
	}
	if seen || op == store.FlagsReplace {
		set := op != store.FlagsRemove
		if op == store.FlagsReplace {
			set = seen
		}
		if _, err := a.SetPrivateSeen(ctx, mailboxID, a.user, uids, set); err != nil {
			return res, fmt.Errorf("\\Seen of %q: %w", a.user, err)
		}
	}
	slices.Sort(res.Modified)
	err := a.Fetch(ctx, mailboxID, uids, store.WantFlags, func(m *store.Message) error {
		res.Updated = append(res.Updated, store.MessageMeta{UID: m.UID, ModSeq: m.ModSeq, Flags: slices.Clone(m.Flags)})
		return nil
	})
	return res, err
}

func (a *account) Append(ctx context.Context, mailbox string, msgs []store.NewMessage) (store.AppendResult, error) {
	shared := make([]store.NewMessage, len(msgs))
	var seenAt []int
	for i, m := range msgs {
		var seen bool
		m.Flags, seen = withoutSeen(m.Flags)
		if seen {
			seenAt = append(seenAt, i)
		}
		shared[i] = m
	}
	res, err := a.Account.Append(ctx, mailbox, shared)
	if err != nil || len(seenAt) == 0 {
		return res, err
	}
	uids := make([]uint32, len(seenAt))
	for i, k := range seenAt {
		uids[i] = res.UIDs[k]
	}
	if _, err := a.SetPrivateSeen(ctx, res.MailboxID, a.user, uids, true); err != nil {
		return res, fmt.Errorf("append to %q: \\Seen of %q: %w", mailbox, a.user, err)
	}
	return res, nil
}

func (a *account) Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	return a.carrySeen(ctx, srcMailboxID, uids, func() (store.CopyResult, error) {
		return a.Account.Copy(ctx, srcMailboxID, uids, dest)
	})
}

func (a *account) Move(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	return a.carrySeen(ctx, srcMailboxID, uids, func() (store.CopyResult, error) {
		return a.Account.Move(ctx, srcMailboxID, uids, dest)
	})
}

// carrySeen runs a copy or move within the owner's account and gives the
// copies user's \Seen of their originals (the store copies the shared
// flags, the owner's \Seen among them).
func (a *account) carrySeen(ctx context.Context, srcMailboxID int64, uids []uint32, do func() (store.CopyResult, error)) (store.CopyResult, error) {
	st, err := a.states(ctx, srcMailboxID, uids, 0)
	if err != nil {
		return store.CopyResult{}, err
	}
	res, err := do()
	if err != nil {
		return res, err
	}
	var seen []uint32
	for i, u := range res.SrcUIDs {
		if st.of(u).Seen {
			seen = append(seen, res.DestUIDs[i])
		}
	}
	if len(seen) > 0 {
		if _, err := a.SetPrivateSeen(ctx, res.DestMailboxID, a.user, seen, true); err != nil {
			return res, fmt.Errorf("copy: \\Seen of %q: %w", a.user, err)
		}
	}
	return res, nil
}
