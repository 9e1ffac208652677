// Package sorted searches ascending slices of UIDs from a position a
// walk has reached.
package sorted

import "slices"

// Seek returns the position of x in u[from:] (u ascending) or, when x is
// not there, the position where it would be, and whether it is there. It
// looks at the next two elements first, then gallops (steps 2, 4, 8, ...)
// and searches the bracket found: O(log distance), so a walk over many
// nearby values (a search that hits every other message) does not pay a
// binary search of the rest of the slice for each. x should not be below
// u[from-1] (walks go up); then the answer is the one of a binary search.
func Seek(u []uint32, from int, x uint32) (int, bool) {
	if from >= len(u) || u[from] >= x {
		return from, from < len(u) && u[from] == x
	}
	// u[from] < x from here on.
	lo, step := from, 1
	for lo+step < len(u) && u[lo+step] < x {
		lo += step
		step *= 2
	}
	hi := min(lo+step+1, len(u))
	i, ok := slices.BinarySearch(u[lo+1:hi], x)
	return lo + 1 + i, ok
}
