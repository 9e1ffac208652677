package imap

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseNumSet(t *testing.T) {
	tests := []struct {
		in   string
		want NumSet
		str  string
	}{
		{"1", set(1, 1), "1"},
		{"*", set(0, 0), "*"},
		{"$", NumSet{Saved: true}, "$"},
		{"1:*", set(1, 0), "1:*"},
		{"5:3,7,9:10", set(5, 3, 7, 7, 9, 10), "5:3,7,9:10"},
		{"4294967295", set(4294967295, 4294967295), "4294967295"},
		{"*:4", set(0, 4), "*:4"},
	}
	for _, tt := range tests {
		got, err := ParseNumSet(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseNumSet(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("String(%q) = %q", tt.in, s)
		}
	}
	for _, bad := range []string{"", "0", "1:0", "01", "4294967296", "1,", ",1", "1::2", "a", "1:2:3", "$,1", "1,$", "-1", " 1", "99999999999999999999"} {
		if s, err := ParseNumSet(bad); err == nil {
			t.Errorf("ParseNumSet(%q) = %+v, want error", bad, s)
		}
	}
	if _, err := ParseNumSet(strings.Repeat("1,", DefaultMaxRanges) + "1"); err == nil {
		t.Error("too many ranges accepted")
	}
}

func TestNumSetContainsExpand(t *testing.T) {
	tests := []struct {
		in     string
		max    uint32
		expand []NumRange
	}{
		{"1:*", 5, []NumRange{{1, 5}}},
		{"*", 5, []NumRange{{5, 5}}},
		{"*", 0, nil},
		{"7:*", 5, []NumRange{{5, 5}}}, // "*" is 5, so 7:* is 5:7, clipped
		{"5:3,1,2,9:20", 10, []NumRange{{1, 5}, {9, 10}}},
		{"3,1,2", 10, []NumRange{{1, 3}}},
		{"11:20", 10, nil},
		{"1:4294967295,4294967295", 4294967295, []NumRange{{1, 4294967295}}},
		{"2,4,6", 6, []NumRange{{2, 2}, {4, 4}, {6, 6}}},
	}
	for _, tt := range tests {
		s, err := ParseNumSet(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		got := s.Expand(tt.max)
		if !reflect.DeepEqual(got, tt.expand) {
			t.Errorf("%q.Expand(%d) = %v, want %v", tt.in, tt.max, got, tt.expand)
		}
		// Contains agrees with Expand for every n around the range.
		for n := uint32(0); n <= tt.max+2 && n < 50; n++ {
			want := false
			for _, r := range tt.expand {
				if r.Start <= n && n <= r.Stop {
					want = true
				}
			}
			if c := s.Contains(n, tt.max); c != want {
				t.Errorf("%q.Contains(%d, %d) = %v, want %v", tt.in, n, tt.max, c, want)
			}
		}
	}
	if (NumSet{Saved: true}).Contains(1, 10) {
		t.Error("saved set contains 1")
	}
}

func TestNumSetDynamic(t *testing.T) {
	for in, want := range map[string]bool{"1:*": true, "*": true, "1,2": false, "$": false, "*:3": true} {
		s, _ := ParseNumSet(in)
		if s.Dynamic() != want {
			t.Errorf("%q.Dynamic() = %v", in, !want)
		}
	}
}

func TestSetFromNums(t *testing.T) {
	tests := []struct {
		in   []uint32
		want string
	}{
		{nil, ""},
		{[]uint32{1}, "1"},
		{[]uint32{5, 3, 4, 1, 9, 10, 0, 4}, "1,3:5,9:10"},
		{[]uint32{4294967295, 4294967294}, "4294967294:4294967295"},
	}
	for _, tt := range tests {
		in := append([]uint32(nil), tt.in...)
		if got := SetFromNums(tt.in).String(); got != tt.want {
			t.Errorf("SetFromNums(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if !reflect.DeepEqual(in, tt.in) {
			t.Errorf("input modified: %v", tt.in)
		}
	}
}

func FuzzNumSet(f *testing.F) {
	for _, s := range []string{"1", "*", "$", "1:*", "5:3,7,9:10", "1:4294967295", "0", "1,,2", "2,4:7,9,12:*"} {
		f.Add(s, uint32(10))
	}
	f.Fuzz(func(t *testing.T, in string, max uint32) {
		s, err := ParseNumSet(in)
		if err != nil {
			return
		}
		// String round-trips.
		s2, err := ParseNumSet(s.String())
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip %q -> %q: %v", in, s.String(), err)
		}
		exp := s.Expand(max)
		for i, r := range exp {
			if r.Start == 0 || r.Start > r.Stop || r.Stop > max {
				t.Fatalf("%q.Expand(%d): bad range %v", in, max, r)
			}
			if i > 0 && uint64(exp[i-1].Stop)+1 >= uint64(r.Start) {
				t.Fatalf("%q.Expand(%d): not merged %v", in, max, exp)
			}
			for _, n := range []uint32{r.Start, r.Stop} {
				if !s.Contains(n, max) {
					t.Fatalf("%q: Contains(%d,%d) false but in Expand", in, n, max)
				}
			}
			if r.Start > 1 && s.Contains(r.Start-1, max) && (i == 0 || exp[i-1].Stop != r.Start-1) {
				t.Fatalf("%q: Contains(%d,%d) true but not in Expand", in, r.Start-1, max)
			}
		}
		// SetFromNums of a small expansion reproduces it.
		var nums []uint32
		total := 0
		for _, r := range exp {
			total += int(r.Stop-r.Start) + 1
			if total > 1000 {
				return
			}
			for n := r.Start; ; n++ {
				nums = append(nums, n)
				if n == r.Stop {
					break
				}
			}
		}
		if got := SetFromNums(nums); len(exp) > 0 && !reflect.DeepEqual(got.Ranges, exp) {
			t.Fatalf("SetFromNums(%v) = %v, want %v", nums, got.Ranges, exp)
		}
	})
}

func BenchmarkNumSetContains(b *testing.B) {
	s, err := ParseNumSet("1:100,200:300,400,500:600,1000:*")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Contains(uint32(i%2000)+1, 1500)
	}
}
