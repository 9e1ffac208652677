package sieve

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Comparators (RFC 4790) and match types (RFC 5228 §2.7, RFC 5231,
// the regex draft).

// maxRegexBytes bounds a regular expression's source; Go's regexp runs in
// time linear in the input, so a short pattern cannot be a bomb, but a
// huge one costs memory to compile.
const maxRegexBytes = 1024

// compileRegex compiles a :regex key (POSIX extended syntax as far as
// RE2 has it); i;ascii-casemap makes it case-insensitive.
func compileRegex(pattern, comparator string) (*regexp.Regexp, error) {
	if len(pattern) > maxRegexBytes {
		return nil, fmt.Errorf("regular expression longer than %d bytes", maxRegexBytes)
	}
	if comparator == "i;ascii-casemap" {
		pattern = "(?i)" + pattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("bad regular expression %q: %w", pattern, err)
	}
	return re, nil
}

// foldASCII maps A-Z to a-z, nothing else (i;ascii-casemap).
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// numericValue is i;ascii-numeric's value of s: the leading digits, or
// "infinity" (ok=false) when s does not start with a digit.
func numericValue(s string) (digits string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return "", false
	}
	d := strings.TrimLeft(s[:i], "0")
	return d, true
}

// compareNumeric orders two strings by i;ascii-numeric: -1, 0, 1.
func compareNumeric(a, b string) int {
	da, oka := numericValue(a)
	db, okb := numericValue(b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return 1
	case !okb:
		return -1
	}
	if len(da) != len(db) {
		if len(da) < len(db) {
			return -1
		}
		return 1
	}
	return strings.Compare(da, db)
}

// compare orders a and b under a comparator.
func compare(comparator, a, b string) int {
	switch comparator {
	case "i;ascii-numeric":
		return compareNumeric(a, b)
	case "i;ascii-casemap":
		return strings.Compare(foldASCII(a), foldASCII(b))
	}
	return strings.Compare(a, b)
}

func relation(op string, c int) bool {
	switch op {
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	}
	return false
}

// matcher evaluates one key against values. captures receives the match
// variables of a successful :matches/:regex when non-nil.
type matcher struct {
	m     *matchSpec
	r     *runner
	keys  []string
	res   []*regexp.Regexp // compiled keys for :regex
	globs [][]globToken    // parsed constant keys of :matches
}

func (r *runner) newMatcher(m *matchSpec, keys []string) (*matcher, error) {
	mt := &matcher{m: m, r: r, keys: keys}
	if m.typ == "matches" && m.globs != nil && len(m.globs) == len(keys) && sameStrings(m.globKeys, keys) {
		mt.globs = m.globs
	}
	if m.typ == "regex" {
		if m.regexes != nil && len(m.regexes) == len(keys) {
			mt.res = m.regexes
		} else {
			for _, k := range keys {
				re, err := r.regex(k, m.comparator)
				if err != nil {
					return nil, err
				}
				mt.res = append(mt.res, re)
			}
		}
	}
	return mt, nil
}

// matchValues reports whether any value matches any key; for :count it
// compares the number of values.
func (mt *matcher) matchValues(values []string) (bool, error) {
	if mt.m.typ == "count" {
		n := strconv.Itoa(len(values))
		for _, k := range mt.keys {
			if err := mt.r.step(); err != nil {
				return false, err
			}
			if relation(mt.m.rel, compareNumeric(n, k)) {
				return true, nil
			}
		}
		return false, nil
	}
	for _, v := range values {
		ok, err := mt.matchOne(v)
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (mt *matcher) matchOne(v string) (bool, error) {
	m := mt.m
	for i, k := range mt.keys {
		if err := mt.r.spend(matchCost(m.typ, v, k)); err != nil {
			return false, err
		}
		switch m.typ {
		case "is":
			if compare(m.comparator, v, k) == 0 {
				return true, nil
			}
		case "value":
			if relation(m.rel, compare(m.comparator, v, k)) {
				return true, nil
			}
		case "contains":
			if m.comparator == "i;ascii-casemap" {
				if strings.Contains(foldASCII(v), foldASCII(k)) {
					return true, nil
				}
			} else if strings.Contains(v, k) {
				return true, nil
			}
		case "matches":
			fold := m.comparator == "i;ascii-casemap"
			var caps []string
			var ok bool
			if mt.globs != nil {
				caps, ok = globMatchTokens(mt.globs[i], v, fold)
			} else {
				caps, ok = globMatch(k, v, fold)
			}
			if ok {
				mt.r.setMatchVars(append([]string{v}, caps...))
				return true, nil
			}
		case "regex":
			sub := mt.res[i].FindStringSubmatch(v)
			if sub != nil {
				mt.r.setMatchVars(sub)
				return true, nil
			}
		}
	}
	return false, nil
}

// matchCost is the steps one comparison costs: 1, plus one per 4 KiB of
// the value, and for :matches and :regex (whose work grows with value
// times pattern) one per 4 Ki of that product. A long body or header
// compared many times thus runs into MaxSteps instead of taking minutes.
func matchCost(typ, v, k string) int {
	c := 1 + len(v)>>12
	if typ == "matches" || typ == "regex" {
		c += len(v) * (len(k) + 1) >> 12
	}
	return c
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// globToken is one element of a :matches pattern.
type globToken struct {
	star bool   // "*"
	one  bool   // "?"
	lit  string // literal text (escapes removed)
}

func parseGlob(p string) []globToken {
	var out []globToken
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, globToken{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			flush()
			out = append(out, globToken{star: true})
		case '?':
			flush()
			out = append(out, globToken{one: true})
		case '\\':
			if i+1 < len(p) {
				i++
				lit.WriteByte(p[i])
			}
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return out
}

// globMatch matches v against a :matches pattern. The wildcards take
// text from left to right, each "*" as little as possible (so that
// "[*] *" on "[a] [b] c" gives "a" and "[b] c", as RFC 5229 §3.2 shows).
// It returns what each wildcard matched. It runs in O(len(p)·len(v)):
// each literal run after a "*" is found at its leftmost place, which is
// always right for a match without backtracking.
func globMatch(pattern, value string, fold bool) ([]string, bool) {
	if fold {
		pattern = foldASCII(pattern)
	}
	return globMatchTokens(parseGlob(pattern), value, fold)
}

// globMatchTokens is globMatch with the pattern parsed (and, with fold,
// folded) beforehand.
func globMatchTokens(toks []globToken, value string, fold bool) ([]string, bool) {
	v := value
	if fold {
		// Folding keeps byte offsets, so captures come from value.
		v = foldASCII(value)
	}
	var caps []string
	i := 0 // position in v
	for t := 0; t < len(toks); t++ {
		tok := toks[t]
		switch {
		case tok.one:
			if i >= len(v) {
				return nil, false
			}
			_, n := utf8.DecodeRuneInString(v[i:])
			caps = append(caps, value[i:i+n])
			i += n
		case !tok.star:
			if !strings.HasPrefix(v[i:], tok.lit) {
				return nil, false
			}
			i += len(tok.lit)
		default:
			// A star: gather the fixed part that follows up to the next
			// star (literals and "?"), and find its leftmost place; if
			// this is the last star, the fixed part must end the value.
			j := t + 1
			for j < len(toks) && !toks[j].star {
				j++
			}
			fixed := toks[t+1 : j]
			last := j == len(toks)
			start, ok := findFixed(v, i, fixed, last)
			if !ok {
				return nil, false
			}
			caps = append(caps, value[i:start])
			i = start
		}
	}
	if i != len(v) {
		return nil, false
	}
	return caps, true
}

// findFixed finds where a run of literal and "?" tokens matches v at or
// after from: the leftmost place, or with atEnd the place that ends v.
func findFixed(v string, from int, fixed []globToken, atEnd bool) (int, bool) {
	if atEnd {
		// The run must match a suffix; its length in bytes depends on the
		// runes "?" takes, so try each rune boundary from the left.
		for s := from; s <= len(v); {
			if end, ok := fixedAt(v, s, fixed); ok && end == len(v) {
				return s, true
			}
			if s == len(v) {
				break
			}
			_, n := utf8.DecodeRuneInString(v[s:])
			s += n
		}
		return 0, false
	}
	for s := from; s <= len(v); {
		if _, ok := fixedAt(v, s, fixed); ok {
			return s, true
		}
		if s == len(v) {
			break
		}
		_, n := utf8.DecodeRuneInString(v[s:])
		s += n
	}
	return 0, false
}

func fixedAt(v string, s int, fixed []globToken) (int, bool) {
	for _, tok := range fixed {
		if tok.one {
			if s >= len(v) {
				return 0, false
			}
			_, n := utf8.DecodeRuneInString(v[s:])
			s += n
			continue
		}
		if !strings.HasPrefix(v[s:], tok.lit) {
			return 0, false
		}
		s += len(tok.lit)
	}
	return s, true
}

// decodeEncodedCharacters replaces "${hex:...}" and "${unicode:...}"
// (RFC 5228 §2.4.2.4). A malformed sequence stays as written.
func decodeEncodedCharacters(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		end := strings.IndexByte(rest, '}')
		decoded, ok := "", false
		if end >= 0 {
			decoded, ok = decodeEncoded(rest[:end])
		}
		if !ok {
			b.WriteString("${")
			s = rest
			continue
		}
		b.WriteString(decoded)
		s = rest[end+1:]
	}
}

func decodeEncoded(inner string) (string, bool) {
	kind, list, ok := strings.Cut(inner, ":")
	if !ok {
		return "", false
	}
	kind = strings.ToLower(kind)
	if kind != "hex" && kind != "unicode" {
		return "", false
	}
	var b strings.Builder
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }) {
		if len(f) > 8 {
			return "", false
		}
		v, err := strconv.ParseUint(f, 16, 32)
		if err != nil {
			return "", false
		}
		if kind == "hex" {
			if v > 0xff {
				return "", false
			}
			b.WriteByte(byte(v))
		} else {
			if v > utf8.MaxRune || (v >= 0xd800 && v <= 0xdfff) {
				return "", false
			}
			b.WriteRune(rune(v))
		}
	}
	return b.String(), true
}
