package sorted

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSeek: from any starting position, Seek answers as a binary search
// of the slice from there on, for values below, inside, between and
// above the slice's.
func TestSeek(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		var u []uint32
		v := uint32(0)
		for range r.IntN(300) {
			v += 1 + uint32(r.IntN(4))
			u = append(u, v)
		}
		for range 300 {
			from := r.IntN(len(u) + 1)
			x := uint32(r.IntN(int(v) + 10))
			if from > 0 && x < u[from-1] {
				continue // walks go up
			}
			wi, wok := slices.BinarySearch(u[from:], x)
			gi, gok := Seek(u, from, x)
			if gi != from+wi || gok != wok {
				t.Fatalf("Seek(%v, %d, %d) = %d, %v; want %d, %v", u, from, x, gi, gok, from+wi, wok)
			}
		}
	}
}

func BenchmarkSeekEveryOther(b *testing.B) {
	u := make([]uint32, 100000)
	for i := range u {
		u[i] = uint32(i + 1)
	}
	for b.Loop() {
		j := 0
		for x := uint32(1); x <= 100000; x += 2 {
			j, _ = Seek(u, j, x)
		}
	}
}

// TestSeekWalk: Seek, asked ascending values as a FETCH or SEARCH walks a
// mailbox's UIDs, lands where a step-by-step scan lands, for dense walks,
// jumps and values outside the slice.
func TestSeekWalk(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var u []uint32
		next := uint32(1)
		for range r.IntN(300) {
			next += 1 + uint32(r.IntN(3)*r.IntN(3)) // runs of neighbours and gaps
			u = append(u, next)
		}
		i, j := 0, 0
		for x := uint32(1); x <= next+2; x += 1 + uint32(r.IntN(40)*r.IntN(2)) {
			i, _ = Seek(u, i, x)
			for j < len(u) && u[j] < x {
				j++
			}
			if i != j {
				t.Fatalf("Seek(%v, x %d) = %d, want %d", u, x, i, j)
			}
		}
	}
	if got, ok := Seek(nil, 0, 5); got != 0 || ok {
		t.Fatalf("empty: %d, %v", got, ok)
	}
}
