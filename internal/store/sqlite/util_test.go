package sqlite

import (
	"reflect"
	"strings"
	"testing"
)

func TestToRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []uint32
		want []uidRange
	}{
		{nil, nil},
		{[]uint32{5}, []uidRange{{5, 5}}},
		{[]uint32{3, 1, 2, 2, 7, 9, 8, 3}, []uidRange{{1, 3}, {7, 9}}},
		{[]uint32{4294967295, 4294967294, 1}, []uidRange{{1, 1}, {4294967294, 4294967295}}},
	} {
		if got := toRanges(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("toRanges(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestForRangeChunks(t *testing.T) {
	var rs []uidRange
	for i := range uint32(1000) {
		rs = append(rs, uidRange{i * 10, i*10 + 1})
	}
	rs = append(rs, uidRange{20000, 20000})
	total, calls := 0, 0
	err := forRangeChunks("uid", rs, func(cond string, args []any) error {
		calls++
		total += strings.Count(cond, "uid")
		if len(args) > 2*maxRangesPerQuery {
			t.Errorf("chunk with %d args", len(args))
		}
		return nil
	})
	if err != nil || total != len(rs) || calls != 3 {
		t.Fatalf("chunks: %d conditions in %d calls, %v", total, calls, err)
	}
}
