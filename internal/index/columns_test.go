package index

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestColumnsFind: find from any starting row answers as a binary search
// of the rows from there on, for UIDs below, inside, between and above.
func TestColumnsFind(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		var c columns
		u := uint32(0)
		for range r.IntN(300) {
			u += 1 + uint32(r.IntN(4))
			c.uid = append(c.uid, u)
		}
		for range 200 {
			from := 0
			if len(c.uid) > 0 {
				from = r.IntN(len(c.uid) + 1)
			}
			uid := uint32(r.IntN(int(u) + 10))
			if from < len(c.uid) && uid < c.uid[from] {
				continue // callers never look back
			}
			wi, wok := slices.BinarySearch(c.uid[from:], uid)
			gi, gok := c.find(uid, from)
			if gi != from+wi || gok != wok {
				t.Fatalf("find(%d, %d) in %v = %d, %v; want %d, %v", uid, from, c.uid, gi, gok, from+wi, wok)
			}
		}
	}
}
