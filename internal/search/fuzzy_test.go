package search

import (
	"fmt"
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
