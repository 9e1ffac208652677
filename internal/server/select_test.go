package server

import (
	"math/rand/v2"
	"testing"
)

// TestSeekUID: seekUID, asked ascending UIDs as a FETCH or SEARCH walks
// the view, lands where a step-by-step scan lands, for dense walks, jumps
// and UIDs outside the view.
func TestSeekUID(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var u []uint32
		next := uint32(1)
		for range r.IntN(300) {
			next += 1 + uint32(r.IntN(3)*r.IntN(3)) // runs of neighbours and gaps
			u = append(u, next)
		}
		i, j := 0, 0
		for uid := uint32(1); uid <= next+2; uid += 1 + uint32(r.IntN(40)*r.IntN(2)) {
			i = seekUID(u, i, uid)
			for j < len(u) && u[j] < uid {
				j++
			}
			if i != j {
				t.Fatalf("seekUID(%v, uid %d) = %d, want %d", u, uid, i, j)
			}
		}
	}
	if got := seekUID(nil, 0, 5); got != 0 {
		t.Fatalf("empty view: %d", got)
	}
}
