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
		matched, modseqs = matched[:0], modseqs[:0]
		answer := make([]int8, len(b.sets.lists)) // 0 unknown, 1 yes, -1 no
		j := 0
		for _, u := range uids {
			var ok bool
			if j, ok = b.cols.find(u, j); !ok {
				continue
			}
			set := b.cols.flags[j]
			if answer[set] == 0 {
				answer[set] = -1
				if match(b.sets.lists[set]) {
					answer[set] = 1
				}
			}
			if answer[set] > 0 {
				matched = append(matched, u)
				modseqs = append(modseqs, b.cols.modseq[j])
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("match flags: %w", err)
	}
	return matched, modseqs, nil
}
