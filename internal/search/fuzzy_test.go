package search

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestFuzzyScore: the grams of a needle and the scores they give.
func TestFuzzyScore(t *testing.T) {
	var got []string
	for _, g := range FuzzyGrams([]byte("helo wörld")) {
		s := string(g.Text)
		if g.WordStart {
			s = "_" + s
		}
		got = append(got, s)
	}
	if want := "[_he hel elo _wö wör örl rld]"; fmt.Sprint(got) != want {
		t.Fatalf("grams %v, want %s", got, want)
	}
	for _, c := range []struct {
		needle, text string
		want         uint8
	}{
		{"helo", "say helo there", 100},
		{"helo", "hello", 1},             // _he hel: 2 of 3
		{"helo", "say\nhelp", 1},         // a line start is a word start
		{"helo", "shell", 0},             // hel only
		{"imap break", "broken imap", 1}, // 4 of 7
		{"imap break", "imap breaks", 100},
		{"imap break", "imap breal", 66}, // 6 of 7
		{"a", "b", 0},
		{"a", "xa", 100},
	} {
		if got := FuzzyScore([]byte(c.needle), []byte(c.text)); got != c.want {
			t.Errorf("FuzzyScore(%q, %q) = %d, want %d", c.needle, c.text, got, c.want)
		}
	}
}

// TestFuzzyScoreMasked: told which grams a text lacks (as a full-text
// index knows), the score is the same as looking for every gram; a mask
// that wrongly clears a gram the text holds changes it (so the mask is
// used, not ignored).
func TestFuzzyScoreMasked(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	words := []string{"half", "moon", "halfmoon", "mon", "lfm", "hal", "helo", "world", "wörld", "ölf", "a", "x"}
	phrase := func(n int) []byte {
		var b []byte
		for i := range n {
			if i > 0 {
				b = append(b, " \n\t"[rng.IntN(3)])
			}
			b = append(b, words[rng.IntN(len(words))]...)
		}
		return b
	}
	changed := 0
	for range 3000 {
		needle := phrase(1 + rng.IntN(2))
		texts := [][]byte{phrase(rng.IntN(6)), phrase(rng.IntN(6))}
		grams := FuzzyGrams(needle)
		var truth uint64
		for i, g := range grams {
			if g.In(texts...) {
				truth |= 1 << i
			}
		}
		want := FuzzyScoreGrams(needle, grams, texts...)
		// Absent grams cleared, any present or unknown ones kept.
		maybe := truth | rng.Uint64()
		if got := FuzzyScoreMasked(needle, grams, maybe, texts...); got != want {
			t.Fatalf("needle %q texts %q mask %b: score %d, want %d", needle, texts, maybe, got, want)
		}
		if want > 0 && truth != 0 {
			wrong := truth &^ (truth & -truth) // one gram it holds said absent
			if FuzzyScoreMasked(needle, grams, wrong, texts...) != want {
				changed++
			}
		}
	}
	if changed == 0 {
		t.Fatal("clearing a gram the text holds never changed a score")
	}
}
