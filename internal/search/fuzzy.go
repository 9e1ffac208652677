package search

import (
	"bytes"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tern-imap/tern/imap"
)

// Fuzzy matching (RFC 6203 SEARCH=FUZZY).
//
// A fuzzy text key matches a message when enough of the needle's
// trigrams occur somewhere in the text the key reads: the needle (folded
// like every needle) is split into words at white space, each word
// contributes its trigrams and, when it has two characters or more, one
// "word start" gram: a separator (space, tab, newline or NUL) followed
// by the word's first two characters. "helo" thus has " he", "hel" and
// "elo", and "hello", "help" and "helm" hold two of the three. The share
// of grams present decides: at least FuzzyThreshold matches, and a text
// holding the whole needle always matches with relevancy 100. The
// relevancy of a fuzzy match below that spreads the share between the
// threshold and 1 over 1..99, so clients see the whole range RFC 6203 §4
// asks for.
//
// The score is a function of the needle and the text alone: the scan
// (Candidate) and a full-text index (which only finds candidates, then
// scores their stored text with FuzzyScore) give the same answer.

// fuzzyNum/fuzzyDen is the share of a needle's grams a text must hold
// to match fuzzily. A half lets "IMAP break" find "broken IMAP" (RFC
// 6203 §3's example: 4 of its 7 grams).
const (
	fuzzyNum = 1
	fuzzyDen = 2
)

// maxFuzzyGrams bounds the grams of one needle; a longer needle uses an
// evenly spread sample (the same one everywhere).
const maxFuzzyGrams = 32

// FuzzyGram is one gram of a fuzzy needle: three characters, or, when
// WordStart, a separator followed by the two characters in Text.
type FuzzyGram struct {
	Text      []byte
	WordStart bool
}

// FuzzyGrams returns the grams of a folded needle (see the package
// comment above), distinct, at most maxFuzzyGrams.
func FuzzyGrams(needle []byte) []FuzzyGram {
	var grams []FuzzyGram
	add := func(g []byte, start bool) {
		for _, h := range grams {
			if h.WordStart == start && bytes.Equal(h.Text, g) {
				return
			}
		}
		grams = append(grams, FuzzyGram{Text: g, WordStart: start})
	}
	for _, w := range bytes.FieldsFunc(needle, isFuzzySpace) {
		// Rune boundaries of w.
		var at []int
		for i := 0; i < len(w); {
			_, n := utf8.DecodeRune(w[i:])
			at = append(at, i)
			i += n
		}
		at = append(at, len(w))
		runes := len(at) - 1
		if runes >= 2 {
			add(w[:at[2]], true)
		}
		for i := 0; i+3 <= runes; i++ {
			add(w[at[i]:at[i+3]], false)
		}
	}
	if len(grams) > maxFuzzyGrams {
		sample := make([]FuzzyGram, maxFuzzyGrams)
		for i := range sample {
			sample[i] = grams[i*(len(grams)-1)/(maxFuzzyGrams-1)]
		}
		grams = sample
	}
	return grams
}

// isFuzzySpace separates the words of a fuzzy needle.
func isFuzzySpace(r rune) bool { return unicode.IsSpace(r) || r == 0 }

// fuzzySeparators are the bytes a WordStart gram may follow in a text.
var fuzzySeparators = [...]byte{' ', '\t', '\n', 0}

// In reports whether gram g occurs in one of texts.
func (g FuzzyGram) In(texts ...[]byte) bool {
	for _, t := range texts {
		if !g.WordStart {
			if bytes.Contains(t, g.Text) {
				return true
			}
			continue
		}
		if bytes.HasPrefix(t, g.Text) {
			return true
		}
		for i := 0; ; {
			j := bytes.Index(t[i:], g.Text)
			if j < 0 {
				break
			}
			if k := i + j; k > 0 && bytes.IndexByte(fuzzySeparators[:], t[k-1]) >= 0 {
				return true
			}
			i += j + 1
		}
	}
	return false
}

// FuzzyMinPresent is how many of n grams a text must hold to match.
func FuzzyMinPresent(n int) int { return (n*fuzzyNum + fuzzyDen - 1) / fuzzyDen }

// FuzzyScore returns the relevancy (1..100) of a fuzzy match of the
// folded needle in texts, 0 for no match. A needle without grams (empty,
// or only one-character words) matches exactly: 100 when a text holds it.
func FuzzyScore(needle []byte, texts ...[]byte) uint8 {
	return FuzzyScoreGrams(needle, FuzzyGrams(needle), texts...)
}

// FuzzyScoreGrams is FuzzyScore with the needle's grams
// (FuzzyGrams(needle)) made once by a caller that scores many texts.
func FuzzyScoreGrams(needle []byte, grams []FuzzyGram, texts ...[]byte) uint8 {
	return FuzzyScoreMasked(needle, grams, ^uint64(0), texts...)
}

// FuzzyScoreMasked is FuzzyScoreGrams for texts known to lack every gram
// whose bit in maybe is clear (bit i stands for grams[i]; a full-text
// index knows which trigrams a text holds). Those grams are not looked
// for, and neither is the whole needle when a trigram is missing (the
// needle holds each of its trigrams; a word-start gram's separator need
// not be in it), so a text is read fewer times; the score is the same as
// FuzzyScoreGrams'.
func FuzzyScoreMasked(needle []byte, grams []FuzzyGram, maybe uint64, texts ...[]byte) uint8 {
	whole := true
	for i, g := range grams {
		if !g.WordStart && maybe&(1<<i) == 0 {
			whole = false
			break
		}
	}
	if whole {
		for _, t := range texts {
			if bytes.Contains(t, needle) {
				return 100
			}
		}
	}
	return fuzzyShareScore(grams, maybe, texts)
}

// fuzzyShareScore scores texts by the share of grams they hold (never
// 100: that is kept for the whole needle); grams whose bit in maybe is
// clear are absent.
func fuzzyShareScore(grams []FuzzyGram, maybe uint64, texts [][]byte) uint8 {
	n := len(grams)
	if n == 0 {
		return 0
	}
	present := 0
	for i, g := range grams {
		if maybe&(1<<i) != 0 && g.In(texts...) {
			present++
		} else if present+(n-i-1) < FuzzyMinPresent(n) {
			return 0 // cannot reach the threshold any more
		}
	}
	need := FuzzyMinPresent(n)
	if present < need {
		return 0
	}
	if n == need {
		return 99
	}
	return uint8(1 + 98*(present-need)/(n-need))
}

// isTextKey reports whether op is a key that reads message text.
func isTextKey(op imap.SearchKeyOp) bool {
	switch op {
	case imap.SearchBody, imap.SearchText, imap.SearchSubject, imap.SearchHeader,
		imap.SearchFrom, imap.SearchTo, imap.SearchCc, imap.SearchBcc:
		return true
	}
	return false
}

// matchFuzzy evaluates text key k fuzzily on the message: the texts the
// key reads exactly (the field values of a header key, with the
// normalized addresses for FROM..BCC; the body; header, body and MIME
// headers for TEXT) scored by FuzzyScore. An empty needle matches as
// without FUZZY.
func (c *Candidate) matchFuzzy(k *imap.SearchKey) (bool, error) {
	if k.Str == "" {
		c.fuzzy--
		defer func() { c.fuzzy++ }()
		return c.match(k, time.Time{})
	}
	var texts [][]byte
	switch k.Op {
	case imap.SearchBody:
		if err := c.loadBody(); err != nil {
			return false, err
		}
		texts = [][]byte{c.bodyText}
	case imap.SearchText:
		if err := c.loadHeader(); err != nil {
			return false, err
		}
		if err := c.loadBody(); err != nil {
			return false, err
		}
		texts = [][]byte{c.hdrText, c.bodyText, c.mimeText}
	default:
		if err := c.loadHeader(); err != nil {
			return false, err
		}
		texts = c.fieldTexts(k)
	}
	c.needle = foldAppendString(c.needle[:0], k.Str)
	s := FuzzyScore(c.needle, texts...)
	if s == 0 {
		return false, nil
	}
	c.addScore(s)
	return true, nil
}

// fieldTexts returns the decoded values of the header fields header key
// k reads, and for FROM..BCC also their normalized addresses.
func (c *Candidate) fieldTexts(k *imap.SearchKey) [][]byte {
	name := k.Field
	address := true
	switch k.Op {
	case imap.SearchFrom:
		name = "From"
	case imap.SearchTo:
		name = "To"
	case imap.SearchCc:
		name = "Cc"
	case imap.SearchBcc:
		name = "Bcc"
	case imap.SearchSubject:
		name, address = "Subject", false
	default:
		address = false
	}
	var texts [][]byte
	var spans [][2]int
	c.addrText = c.addrText[:0]
	for _, f := range c.fields {
		if !asciiEqualFold(c.hdrRaw[f.nameStart:f.nameEnd], name) {
			continue
		}
		texts = append(texts, c.hdrText[f.valStart:f.valEnd])
		if !address {
			continue
		}
		start := len(c.addrText)
		var ok bool
		if c.addrText, ok = appendNormalized(c.addrText, c.hdrRaw[f.nameEnd:min(f.rawEnd, len(c.hdrRaw))]); ok {
			spans = append(spans, [2]int{start, len(c.addrText)})
		}
	}
	for _, sp := range spans {
		texts = append(texts, c.addrText[sp[0]:sp[1]])
	}
	return texts
}
