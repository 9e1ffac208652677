// Package runs compresses lists of UIDs or message sequence numbers into
// runs of consecutive numbers: the one place tern turns [1 2 3 5] into
// 1:3,5, whether for a sequence set on the wire (package imap) or for
// range conditions and expunge tombstones in a store backend.
//
// It is a package of its own, not part of package imap, because the store
// layer is independent of the IMAP wire format (package store imports only
// the standard library and speaks []uint32, never imap.NumSet): a backend
// needs runs of UIDs, not the protocol parser and writer.
package runs

import (
	"iter"
	"slices"
)

// Of yields (lo, hi) for each maximal run of consecutive numbers in nums,
// in the order given: [1 2 3 5] yields (1, 3) and (5, 5). A number that
// repeats the end of the current run is dropped (so duplicates in sorted
// input disappear), and so is 0, never a UID or sequence number. Sorted
// input gives the fewest runs; other input keeps its order, so a SORT
// result stays in sort order.
func Of(nums []uint32) iter.Seq2[uint32, uint32] {
	return func(yield func(lo, hi uint32) bool) {
		var lo, hi uint32 // lo == 0: no run open
		for _, n := range nums {
			switch {
			case n == 0, lo != 0 && n == hi:
				continue
			case lo != 0 && n == hi+1:
				hi = n
				continue
			}
			if lo != 0 && !yield(lo, hi) {
				return
			}
			lo, hi = n, n
		}
		if lo != 0 {
			yield(lo, hi)
		}
	}
}

// Sorted returns nums in ascending order without modifying it: nums itself
// when it already is, otherwise a sorted copy.
func Sorted(nums []uint32) []uint32 {
	if slices.IsSorted(nums) {
		return nums
	}
	s := slices.Clone(nums)
	slices.Sort(s)
	return s
}
