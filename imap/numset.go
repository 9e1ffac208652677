package imap

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/tern-imap/tern/internal/runs"
)

// NumRange is one range of a sequence set. Start and Stop as sent; 0 stands
// for "*" (the largest number in use). Start may exceed Stop ("5:3" equals
// "3:5"); Normalise/Contains handle that.
type NumRange struct {
	Start, Stop uint32
}

// NumSet is a sequence set (message sequence numbers or UIDs, by context).
// Saved marks the SEARCHRES "$" reference (RFC 5182); Ranges is then empty.
type NumSet struct {
	Ranges []NumRange
	Saved  bool
}

// DefaultMaxRanges bounds the number of ranges ParseNumSet accepts.
const DefaultMaxRanges = 10000

// ParseNumSet parses a sequence-set ("1:3,5,7:*") or the saved-result
// reference "$". It accepts at most DefaultMaxRanges ranges.
func ParseNumSet(s string) (NumSet, error) {
	return parseNumSet([]byte(s), DefaultMaxRanges)
}

// NumSetError describes a malformed sequence set.
type NumSetError struct {
	Set string
	Msg string
}

func (e *NumSetError) Error() string {
	return "invalid sequence set " + strconv.Quote(e.Set) + ": " + e.Msg
}

func parseNumSet(b []byte, maxRanges int) (NumSet, error) {
	if len(b) == 1 && b[0] == '$' {
		return NumSet{Saved: true}, nil
	}
	if len(b) == 0 {
		return NumSet{}, &NumSetError{Set: string(b), Msg: "empty"}
	}
	if maxRanges <= 0 {
		maxRanges = DefaultMaxRanges
	}
	// Count ranges first so the slice is allocated once and bounded.
	count := 1
	for _, c := range b {
		if c == ',' {
			count++
		}
	}
	if count > maxRanges {
		return NumSet{}, &NumSetError{Set: truncate(b), Msg: "too many ranges"}
	}
	ranges := make([]NumRange, 0, count)
	i := 0
	for {
		start, ni, err := parseSeqNumber(b, i)
		if err != nil {
			return NumSet{}, &NumSetError{Set: truncate(b), Msg: err.Error()}
		}
		i = ni
		stop := start
		if i < len(b) && b[i] == ':' {
			stop, ni, err = parseSeqNumber(b, i+1)
			if err != nil {
				return NumSet{}, &NumSetError{Set: truncate(b), Msg: err.Error()}
			}
			i = ni
		}
		ranges = append(ranges, NumRange{Start: start, Stop: stop})
		if i == len(b) {
			break
		}
		if b[i] != ',' {
			return NumSet{}, &NumSetError{Set: truncate(b), Msg: "unexpected character"}
		}
		i++
	}
	return NumSet{Ranges: ranges}, nil
}

type numSetMsg string

func (m numSetMsg) Error() string { return string(m) }

// parseSeqNumber parses nz-number or "*" (returned as 0) at b[i:].
func parseSeqNumber(b []byte, i int) (uint32, int, error) {
	if i >= len(b) {
		return 0, i, numSetMsg("missing number")
	}
	if b[i] == '*' {
		return 0, i + 1, nil
	}
	if b[i] < '1' || b[i] > '9' {
		return 0, i, numSetMsg("expected nz-number or *")
	}
	var n uint64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + uint64(b[i]-'0')
		if n > 0xFFFFFFFF {
			return 0, i, numSetMsg("number out of range")
		}
		i++
	}
	return uint32(n), i, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// String formats the set in IMAP syntax ("$" for the saved result, "" for
// an empty set).
func (s NumSet) String() string {
	if s.Saved {
		return "$"
	}
	b := make([]byte, 0, len(s.Ranges)*8)
	for i, r := range s.Ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSeqNumber(b, r.Start)
		if r.Stop != r.Start {
			b = append(b, ':')
			b = appendSeqNumber(b, r.Stop)
		}
	}
	return string(b)
}

func appendSeqNumber(b []byte, n uint32) []byte {
	if n == 0 {
		return append(b, '*')
	}
	var tmp [10]byte
	i := len(tmp)
	for n > 0 {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[i:]...)
}

// Dynamic reports whether the set refers to "*" and so depends on the
// mailbox state.
func (s NumSet) Dynamic() bool {
	for _, r := range s.Ranges {
		if r.Start == 0 || r.Stop == 0 {
			return true
		}
	}
	return false
}

// resolve turns a range into lo<=hi with "*" replaced by max.
func (r NumRange) resolve(max uint32) (lo, hi uint32) {
	lo, hi = r.Start, r.Stop
	if lo == 0 {
		lo = max
	}
	if hi == 0 {
		hi = max
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi
}

// Contains reports whether n is in the set, where max is the largest
// number in use (what "*" stands for). Numbers above max, and 0, are never
// contained, so Contains agrees with Expand. The saved result "$" contains
// nothing: the caller must substitute the saved set first.
func (s NumSet) Contains(n, max uint32) bool {
	if n == 0 || n > max {
		return false
	}
	for _, r := range s.Ranges {
		lo, hi := r.resolve(max)
		if lo <= n && n <= hi {
			return true
		}
	}
	return false
}

// Expand returns the set as sorted, merged, non-overlapping ranges with
// Start<=Stop, "*" resolved to max and every range clipped to 1..max.
func (s NumSet) Expand(max uint32) []NumRange {
	if max == 0 || len(s.Ranges) == 0 {
		return nil
	}
	out := make([]NumRange, 0, len(s.Ranges))
	for _, r := range s.Ranges {
		lo, hi := r.resolve(max)
		if lo == 0 {
			lo = 1
		}
		if lo > max {
			continue
		}
		if hi > max {
			hi = max
		}
		out = append(out, NumRange{Start: lo, Stop: hi})
	}
	slices.SortFunc(out, func(a, b NumRange) int { return cmp.Compare(a.Start, b.Start) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && uint64(r.Start) <= uint64(merged[n-1].Stop)+1 {
			if r.Stop > merged[n-1].Stop {
				merged[n-1].Stop = r.Stop
			}
			continue
		}
		merged = append(merged, r)
	}
	if len(merged) == 0 {
		return nil
	}
	return merged
}

// SetFromNums builds a compact set from numbers in any order, merging runs
// of consecutive numbers into ranges (for COPYUID, APPENDUID, ESEARCH ALL).
// Zeros and duplicates are dropped; nums is not modified.
func SetFromNums(nums []uint32) NumSet {
	return SetFromRuns(runs.Sorted(nums))
}

// SetFromRuns builds a set with one range per run of consecutive numbers
// in nums, keeping their order: sorted nums give the compact set, a SORT
// result keeps its sort order (ESORT ALL). Zeros are dropped.
func SetFromRuns(nums []uint32) NumSet {
	var s NumSet
	for lo, hi := range runs.Of(nums) {
		s.Ranges = append(s.Ranges, NumRange{Start: lo, Stop: hi})
	}
	return s
}
