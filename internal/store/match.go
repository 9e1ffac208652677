package store

import "strings"

// MatchMailbox reports whether the mailbox name matches one of the
// patterns with LIST's wildcards (RFC 9051 §6.3.9): "*" matches
// anything, "%" anything but the hierarchy separator; INBOX matches
// case-insensitively.
func MatchMailbox(patterns []string, name string) bool {
	for _, p := range patterns {
		if matchPattern(p, name) {
			return true
		}
		// INBOX is case-insensitive in patterns too.
		if (name == "INBOX" || strings.HasPrefix(name, "INBOX/")) && len(p) >= 5 && strings.EqualFold(p[:5], "INBOX") {
			if matchPattern("INBOX"+p[5:], name) {
				return true
			}
		}
	}
	return false
}

// matchPattern implements LIST wildcards: "*" matches anything, "%" anything
// but the hierarchy separator. It runs in O(len(p)*len(s)) whatever the
// pattern, so hostile patterns cannot blow up.
func matchPattern(p, s string) bool {
	// cur[j]: p[:i] matches s[:j].
	cur := make([]bool, len(s)+1)
	next := make([]bool, len(s)+1)
	cur[0] = true
	for i := 0; i < len(p); i++ {
		clear(next)
		switch p[i] {
		case '*':
			reach := false
			for j := 0; j <= len(s); j++ {
				reach = reach || cur[j]
				next[j] = reach
			}
		case '%':
			reach := false
			for j := 0; j <= len(s); j++ {
				if j > 0 && s[j-1] == '/' {
					reach = false
				}
				reach = reach || cur[j]
				next[j] = reach
			}
		default:
			for j := 1; j <= len(s); j++ {
				next[j] = cur[j-1] && s[j-1] == p[i]
			}
		}
		cur, next = next, cur
	}
	return cur[len(s)]
}
