package index

import (
	"context"
	"fmt"
)

// MatchFlags implements store.FlagMatcher from the mailbox's columns: the
// predicate runs once per flag set (flagSets), each message costs a
// lookup of its set's answer.
func (a *account) MatchFlags(ctx context.Context, mailboxID int64, uids []uint32, match func(flags []string) bool) ([]uint32, []uint64, error) {
	uids = ascending(uids)
	var matched []uint32
	var modseqs []uint64
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		answer := make([]int8, len(b.sets.lists)) // 0 unknown, 1 yes, -1 no
		// Two walks: the first decides each flag list once and counts the
		// matches, the second fills slices of that size (appending to
		// growing ones was most of a SORT ... ALL of 100,000 messages).
		n := 0
		b.eachFound(uids, func(_ uint32, j int) {
			set := b.cols.flags[j]
			if answer[set] == 0 {
				answer[set] = -1
				if match(b.sets.lists[set]) {
					answer[set] = 1
				}
			}
			if answer[set] > 0 {
				n++
			}
		})
		matched, modseqs = make([]uint32, 0, n), make([]uint64, 0, n)
		b.eachFound(uids, func(u uint32, j int) {
			if answer[b.cols.flags[j]] > 0 {
				matched = append(matched, u)
				modseqs = append(modseqs, b.cols.modseq[j])
			}
		})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("match flags: %w", err)
	}
	return matched, modseqs, nil
}

// eachFound calls f with each of uids (ascending) that is in the mailbox
// and its position in the columns.
func (b *Mailbox) eachFound(uids []uint32, f func(uid uint32, j int)) {
	j := 0
	for _, u := range uids {
		var ok bool
		if j, ok = b.cols.find(u, j); ok {
			f(u, j)
		}
	}
}
