package search

import "github.com/tern-imap/tern/imap"

// Result summarises a SEARCH result for ESEARCH (RFC 4731, RFC 9051
// §7.3.4). nums are the matching sequence numbers or UIDs, sorted
// ascending without duplicates.
type Result struct {
	Min, Max uint32 // 0 when empty
	Count    uint32
	All      string // compressed set, e.g. "1:3,5"; "" when empty
}

// Summarise computes MIN, MAX, COUNT and ALL of nums.
func Summarise(nums []uint32) Result {
	if len(nums) == 0 {
		return Result{}
	}
	return Result{
		Min:   Min(nums),
		Max:   Max(nums),
		Count: uint32(len(nums)),
		All:   FormatSet(nums),
	}
}

// Min is the lowest number of a sorted list, 0 if it is empty.
func Min(nums []uint32) uint32 {
	if len(nums) == 0 {
		return 0
	}
	return nums[0]
}

// Max is the highest number of a sorted list, 0 if it is empty.
func Max(nums []uint32) uint32 {
	if len(nums) == 0 {
		return 0
	}
	return nums[len(nums)-1]
}

// FormatSet renders sorted nums as a compressed sequence set: runs of
// consecutive numbers become ranges ("1:3,5"). It returns "" for none.
func FormatSet(nums []uint32) string {
	return imap.SetFromRuns(nums).String()
}

// ToNumSet converts sorted nums into an imap.NumSet of ranges, one per run
// of consecutive numbers.
func ToNumSet(nums []uint32) imap.NumSet {
	return imap.SetFromRuns(nums)
}
