package runs

import (
	"reflect"
	"testing"
)

func collect(nums []uint32) [][2]uint32 {
	var out [][2]uint32
	for lo, hi := range Of(nums) {
		out = append(out, [2]uint32{lo, hi})
	}
	return out
}

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		in   []uint32
		want [][2]uint32
	}{
		{nil, nil},
		{[]uint32{0, 0}, nil},
		{[]uint32{5}, [][2]uint32{{5, 5}}},
		{[]uint32{1, 2, 3, 5}, [][2]uint32{{1, 3}, {5, 5}}},
		{[]uint32{0, 1, 1, 2, 2, 4}, [][2]uint32{{1, 2}, {4, 4}}},
		{[]uint32{4294967294, 4294967295}, [][2]uint32{{4294967294, 4294967295}}},
		// Unsorted input keeps its order; only ascending runs merge.
		{[]uint32{7, 8, 3, 4, 5, 1}, [][2]uint32{{7, 8}, {3, 5}, {1, 1}}},
		{[]uint32{4294967295, 0, 1}, [][2]uint32{{4294967295, 4294967295}, {1, 1}}},
	} {
		if got := collect(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Of(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestOfStops(t *testing.T) {
	n := 0
	for range Of([]uint32{1, 3, 5}) {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("loop ran %d times after break", n)
	}
}

func TestSorted(t *testing.T) {
	in := []uint32{3, 1, 2}
	got := Sorted(in)
	if !reflect.DeepEqual(got, []uint32{1, 2, 3}) || !reflect.DeepEqual(in, []uint32{3, 1, 2}) {
		t.Fatalf("Sorted: got %v, input now %v", got, in)
	}
	s := []uint32{1, 2}
	if got := Sorted(s); &got[0] != &s[0] {
		t.Fatal("Sorted copied an already sorted slice")
	}
}
