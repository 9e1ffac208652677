package index

import (
	"fmt"
	"slices"
)

// ThreadCacheBytes is the size of every mailbox's thread cache (tests).
func ThreadCacheBytes(x *Indexes) int64 {
	return sumBoxes(x, func(b *Mailbox) int64 { return b.thread.size() })
}

// sumBoxes adds up size over every loaded mailbox, each under its read
// lock.
func sumBoxes(x *Indexes, size func(b *Mailbox) int64) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	var n int64
	for _, b := range x.boxes {
		b.mu.RLock()
		n += size(b)
		b.mu.RUnlock()
	}
	return n
}

// CheckLines checks every loaded mailbox's field lines (lines.go): only
// UIDs of the index, and linesBytes and linesNone true to the entries.
func CheckLines(x *Indexes) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, b := range x.boxes {
		b.mu.RLock()
		var n int64
		none := 0
		for u, l := range b.lines {
			if _, ok := slices.BinarySearch(b.cols.uid, u); !ok {
				b.mu.RUnlock()
				return fmt.Errorf("mailbox %d: lines cached for UID %d, not in the index", k.mailbox, u)
			}
			n += linesSize(l)
			if l == nil {
				none++
			}
		}
		bytes, bnone := b.linesBytes, b.linesNone
		b.mu.RUnlock()
		if n != bytes || none != bnone {
			return fmt.Errorf("mailbox %d: linesBytes %d, linesNone %d; the entries make %d, %d", k.mailbox, bytes, bnone, n, none)
		}
	}
	return nil
}

// LinesShare is one mailbox's share of the budget for field lines.
func LinesShare(x *Indexes) int64 { return x.linesShare() }

// LinesBytes is the field lines' bytes of every loaded mailbox.
func LinesBytes(x *Indexes) int64 {
	return sumBoxes(x, func(b *Mailbox) int64 { return b.linesBytes })
}

// CheckBodies checks every mailbox's body cache (bodies.go): only UIDs
// of the index, bodiesBytes true to the entries, and their sum the
// registry's total, within the body share. It returns the total.
func CheckBodies(x *Indexes) (int64, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var total int64
	for k, b := range x.boxes {
		b.mu.RLock()
		var n int64
		for u, c := range b.bodies {
			if _, ok := slices.BinarySearch(b.cols.uid, u); !ok {
				b.mu.RUnlock()
				return 0, fmt.Errorf("mailbox %d: body cached for UID %d, not in the index", k.mailbox, u)
			}
			n += c.cost()
		}
		if n != b.bodiesBytes {
			b.mu.RUnlock()
			return 0, fmt.Errorf("mailbox %d: bodiesBytes %d, entries %d", k.mailbox, b.bodiesBytes, n)
		}
		total += n
		b.mu.RUnlock()
	}
	if got := x.bodyBytes.Load(); got != total || total > x.bodyShare() {
		return 0, fmt.Errorf("body caches hold %d, the total says %d, the share is %d", total, got, x.bodyShare())
	}
	return total, nil
}

// BodyRecent is how many of a mailbox's newest messages the body cache
// takes.
const BodyRecent = bodyRecent
