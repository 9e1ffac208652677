package sieve

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Variables (RFC 5229), including match variables and the global
// namespace of include (RFC 6609), and imap4flags (RFC 5232).

// maxExpandedBytes bounds a string after variable expansion: a string of
// many references to a large variable cannot blow up.
const maxExpandedBytes = 128 << 10

// expand replaces ${name} references. Unknown variables expand to "";
// text that is not a valid reference stays as written. The result is cut
// at maxExpandedBytes.
func (r *runner) expand(s string) string {
	var b strings.Builder
	for {
		if b.Len() > maxExpandedBytes {
			return truncateUTF8(b.String(), maxExpandedBytes)
		}
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return truncateUTF8(b.String(), maxExpandedBytes)
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		name := rest[:end]
		v, ok := r.lookup(name)
		if !ok {
			b.WriteString("${")
			s = rest
			continue
		}
		b.WriteString(v)
		s = rest[end+1:]
	}
}

// lookup returns a variable's value; ok=false when name is not a valid
// variable reference.
func (r *runner) lookup(name string) (string, bool) {
	if name != "" && name[0] >= '0' && name[0] <= '9' {
		n, err := strconv.Atoi(name)
		if err != nil {
			return "", false
		}
		if n < len(r.sc.match) {
			return r.sc.match[n], true
		}
		return "", true
	}
	lower := strings.ToLower(name)
	if isNamespacedIdentifier(lower) {
		return r.globals[lower[len("global."):]], true
	}
	if !isIdentifier(lower) {
		return "", false
	}
	if r.sc.globals[lower] {
		return r.globals[lower], true
	}
	return r.sc.vars[lower], true
}

// setVar assigns a variable, truncating to MaxVariableBytes (on a rune
// boundary) as RFC 5229 §3 permits.
func (r *runner) setVar(name, value string) error {
	value = truncateUTF8(value, r.lim.MaxVariableBytes)
	lower := strings.ToLower(name)
	target := r.sc.vars
	if isNamespacedIdentifier(lower) {
		lower = lower[len("global."):]
		target = r.globals
	} else if r.sc.globals[lower] {
		target = r.globals
	}
	if _, exists := target[lower]; !exists && len(target) >= r.lim.MaxVariables {
		return r.fail("more than %d variables", r.lim.MaxVariables)
	}
	target[lower] = value
	return nil
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// setMatchVars records the match variables of a successful match.
func (r *runner) setMatchVars(vals []string) {
	if !r.sc.s.variables {
		return
	}
	if len(vals) > 100 {
		vals = vals[:100]
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = truncateUTF8(v, r.lim.MaxVariableBytes)
	}
	r.sc.match = out
}

// set runs the set command with its modifiers, applied in the order of
// RFC 5229 §4.1 (length last).
func (r *runner) set(n *node) error {
	v := r.arg(n, 1)
	switch {
	case n.has("lower"):
		v = strings.ToLower(v)
	case n.has("upper"):
		v = strings.ToUpper(v)
	}
	switch {
	case n.has("lowerfirst"):
		v = mapFirst(v, unicode.ToLower)
	case n.has("upperfirst"):
		v = mapFirst(v, unicode.ToUpper)
	}
	if n.has("quotewildcard") {
		v = quoteWildcard(v)
	}
	if n.has("quoteregex") {
		v = quoteRegex(v)
	}
	if n.has("length") {
		v = strconv.Itoa(utf8.RuneCountInString(v))
	}
	return r.setVar(n.args[0].strs[0], v)
}

func mapFirst(s string, f func(rune) rune) string {
	c, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(f(c)) + s[size:]
}

func quoteWildcard(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c == '*' || c == '?' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func quoteRegex(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`\^$.[]|()?*+{}`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// normalizeFlags splits flag strings at spaces, drops duplicates (case-
// insensitively) and writes system flags in their canonical case.
func normalizeFlags(in []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, s := range in {
		for _, f := range strings.Fields(s) {
			if c, ok := systemFlags[strings.ToLower(f)]; ok {
				f = c
			}
			key := strings.ToLower(f)
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, f)
		}
	}
	return out
}

var systemFlags = map[string]string{
	`\seen`: `\Seen`, `\answered`: `\Answered`, `\flagged`: `\Flagged`,
	`\deleted`: `\Deleted`, `\draft`: `\Draft`,
}

// flagCommand runs setflag, addflag and removeflag on the internal
// variable or on a named variable.
func (r *runner) flagCommand(n *node) error {
	list := r.strs(n.args[len(n.args)-1])
	var cur []string
	varName := ""
	if len(n.args) == 2 {
		varName = n.args[0].strs[0]
		v, _ := r.lookup(varName)
		cur = normalizeFlags([]string{v})
	} else {
		cur = r.flags
	}
	switch n.name {
	case "setflag":
		cur = normalizeFlags(list)
	case "addflag":
		cur = normalizeFlags(append(append([]string{}, cur...), list...))
	case "removeflag":
		drop := map[string]bool{}
		for _, f := range normalizeFlags(list) {
			drop[strings.ToLower(f)] = true
		}
		var kept []string
		for _, f := range cur {
			if !drop[strings.ToLower(f)] {
				kept = append(kept, f)
			}
		}
		cur = kept
	}
	if len(cur) > 256 {
		return r.fail("more than 256 flags")
	}
	if varName != "" {
		return r.setVar(varName, strings.Join(cur, " "))
	}
	r.flags = cur
	return nil
}

// flagValues are the flags hasflag examines.
func (r *runner) flagValues(n *node) []string {
	if len(n.args) == 1 {
		return r.flags
	}
	var out []string
	for _, name := range n.args[0].strs {
		v, _ := r.lookup(name)
		out = append(out, normalizeFlags([]string{v})...)
	}
	return out
}

// splitFlagKeys splits hasflag keys at spaces: "\\Seen \\Flagged" is two.
func splitFlagKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		out = append(out, strings.Fields(k)...)
	}
	return out
}
