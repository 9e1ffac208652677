package sorted

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSets: Union, Intersect and Remove agree with the same operations
// done through a map, on random ascending slices (empty ones included).
func TestSets(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	randSet := func() []uint32 {
		var u []uint32
		for v := uint32(r.IntN(3)); len(u) < r.IntN(40); v += 1 + uint32(r.IntN(3)) {
			u = append(u, v)
		}
		return u
	}
	for range 2000 {
		a, b := randSet(), randSet()
		inB := map[uint32]bool{}
		for _, v := range b {
			inB[v] = true
		}
		var wantU, wantI, wantR []uint32
		for _, v := range a {
			if inB[v] {
				wantI = append(wantI, v)
			} else {
				wantR = append(wantR, v)
			}
		}
		wantU = append(slices.Clone(a), b...)
		slices.Sort(wantU)
		wantU = slices.Compact(wantU)
		if got := Union(a, b); !slices.Equal(got, wantU) {
			t.Fatalf("Union(%v, %v) = %v, want %v", a, b, got, wantU)
		}
		if got := Intersect(a, b); !slices.Equal(got, wantI) {
			t.Fatalf("Intersect(%v, %v) = %v, want %v", a, b, got, wantI)
		}
		if got := Remove(slices.Clone(a), b); !slices.Equal(got, wantR) {
			t.Fatalf("Remove(%v, %v) = %v, want %v", a, b, got, wantR)
		}
	}
}
