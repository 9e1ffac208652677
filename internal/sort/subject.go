package sort

import (
	"strings"

	"github.com/tern-imap/tern/internal/message"
)

// BaseSubject extracts the base subject of a decoded (UTF-8) subject as
// RFC 5256 §2.1 describes, and reports whether the extraction removed
// anything showing the message to be a reply or forward (a "Re:",
// "Fw:", "Fwd:" leader, a "(fwd)" trailer or a "[fwd: ...]" wrapper),
// which THREAD uses. Matching is case-insensitive; the result keeps the
// subject's case (compare it with Collate).
func BaseSubject(subject string) (base string, replyOrForward bool) {
	s := normalizeSpace(subject)
	for {
		// (2) Remove trailers: "(fwd)" and WSP, repeatedly.
		for {
			if n := len(s); n >= 5 && strings.EqualFold(s[n-5:], "(fwd)") {
				s = s[:n-5]
				replyOrForward = true
			} else if n > 0 && s[n-1] == ' ' {
				s = s[:n-1]
			} else {
				break
			}
		}
		// (3), (4), repeated (5) until nothing more matches.
		for {
			changed := false
			// (3) subj-leader = (*subj-blob subj-refwd) / WSP
			for {
				if len(s) > 0 && s[0] == ' ' {
					s = s[1:]
					changed = true
					continue
				}
				if n := leaderLen(s); n > 0 {
					s = s[n:]
					replyOrForward = true
					changed = true
					continue
				}
				break
			}
			// (4) A leading subj-blob goes if a non-empty subj-base
			// remains.
			if n := blobLen(s); n > 0 && strings.TrimLeft(s[n:], " ") != "" {
				s = s[n:]
				changed = true
			}
			if !changed {
				break
			}
		}
		// (6) "[fwd:" ... "]" wrapper: remove it and start again at (2).
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			replyOrForward = true
			continue
		}
		return s, replyOrForward
	}
}

// normalizeSpace turns tabs and line breaks into spaces and collapses
// runs of spaces into one (RFC 5256 §2.1 step 1).
func normalizeSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteByte(c)
	}
	return b.String()
}

// blobLen returns the length of a subj-blob at the start of s:
// "[" *BLOBCHAR "]" *WSP, where BLOBCHAR is anything but "[" and "]".
func blobLen(s string) int {
	if len(s) == 0 || s[0] != '[' {
		return 0
	}
	i := 1
	for i < len(s) && s[i] != '[' && s[i] != ']' {
		i++
	}
	if i >= len(s) || s[i] != ']' {
		return 0
	}
	i++
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// leaderLen returns the length of "*subj-blob subj-refwd" at the start of
// s, 0 if there is none. subj-refwd = ("re" / ("fw" ["d"])) *WSP
// [subj-blob] ":".
func leaderLen(s string) int {
	i := 0
	for {
		if n := refwdLen(s[i:]); n > 0 {
			return i + n
		}
		n := blobLen(s[i:])
		if n == 0 {
			return 0
		}
		i += n
	}
}

func refwdLen(s string) int {
	var starts []int
	switch {
	case hasPrefixFold(s, "re"):
		starts = []int{2}
	case hasPrefixFold(s, "fwd"):
		starts = []int{3, 2}
	case hasPrefixFold(s, "fw"):
		starts = []int{2}
	}
	for _, i := range starts {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		i += blobLen(s[i:])
		if i < len(s) && s[i] == ':' {
			return i + 1
		}
	}
	return 0
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// SubjectKey returns the i;ascii-casemap sort key of a raw (possibly RFC
// 2047 encoded) Subject value: its base subject, decoded, ASCII letters
// upper-cased.
func SubjectKey(raw string) (key string, replyOrForward bool) {
	base, rf := BaseSubject(message.DecodeHeaderValue(raw))
	return Casemap(base), rf
}

// Casemap applies the i;ascii-casemap collation (RFC 4790 §9.2): ASCII
// letters are upper-cased; the results compare as octet strings.
func Casemap(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'a' <= c && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'a' <= c && c <= 'z' {
					b[j] = c - 'a' + 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
