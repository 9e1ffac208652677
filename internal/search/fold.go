package search

import (
	"unicode"
	"unicode/utf8"
)

// Case-insensitive matching uses Unicode simple case folding: every rune is
// mapped to one representative of its simple-fold orbit (ASCII letters to
// lower case), and the folded needle is searched in the folded text.

// foldRune returns the representative of r's simple case-folding orbit.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < least {
			least = f
		}
	}
	if least < utf8.RuneSelf && 'A' <= least && least <= 'Z' {
		least += 'a' - 'A'
	}
	return least
}

// foldAppend appends the case-folded form of s to dst. Bytes that are not
// valid UTF-8 are copied unchanged.
func foldAppend(dst, s []byte) []byte { return foldAppendAny(dst, s) }

// foldAppendString is foldAppend for a string.
func foldAppendString(dst []byte, s string) []byte { return foldAppendAny(dst, s) }

func foldAppendAny[T string | []byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			dst = append(dst, b)
			i++
			continue
		}
		var r rune
		var n int
		switch v := any(s[i:]).(type) {
		case string:
			r, n = utf8.DecodeRuneInString(v)
		case []byte:
			r, n = utf8.DecodeRune(v)
		}
		if r == utf8.RuneError && n <= 1 {
			dst = append(dst, b)
			i++
			continue
		}
		dst = utf8.AppendRune(dst, foldRune(r))
		i += n
	}
	return dst
}
