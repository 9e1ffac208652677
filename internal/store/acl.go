package store

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Access control lists (RFC 4314). Each mailbox has a list of entries,
// identifier -> rights. An identifier is a user name or Anyone; rights are
// letters of AllRights. The owner of a mailbox always has every right and
// has no entry of their own: entries are what the owner (or someone the
// owner gave "a") granted to others.

// AllRights are the rights tern implements, in the canonical order in
// which rights strings are kept and returned.
const AllRights = "lrswipkxtea"

// Anyone is the identifier that matches every user (RFC 4314 §2).
const Anyone = "anyone"

// SharedOwner is the account that holds the shared folders, the
// mailboxes of no user (IMAP's "Shared Folders" namespace): an ordinary
// account without a password, created by "tern shared create". User names
// starting with "#" are reserved for such accounts.
const SharedOwner = "#shared"

// IsReservedUser reports whether name is reserved for an account of no
// user (a name starting with "#", such as SharedOwner).
func IsReservedUser(name string) bool { return strings.HasPrefix(name, "#") }

var (
	// ErrInvalidRights: a rights string with a letter outside AllRights.
	ErrInvalidRights = errors.New("invalid rights")
	// ErrInvalidIdentifier: an identifier that cannot name a user or Anyone.
	ErrInvalidIdentifier = errors.New("invalid ACL identifier")
)

// ACLEntry is one entry of a mailbox's access control list.
type ACLEntry struct {
	Identifier string
	Rights     string // canonical: letters of AllRights in that order, not empty
}

// SharedMailbox is a mailbox with the entries of its ACL that matched a
// SharedMailboxes query.
type SharedMailbox struct {
	MailboxInfo
	ACL []ACLEntry
}

// NormRights checks that rights holds only letters of AllRights and
// returns them in canonical order, each once.
func NormRights(rights string) (string, error) {
	var have [256]bool
	for i := 0; i < len(rights); i++ {
		c := rights[i]
		if strings.IndexByte(AllRights, c) < 0 {
			return "", fmt.Errorf("right %q: %w", string(rune(c)), ErrInvalidRights)
		}
		have[c] = true
	}
	var b strings.Builder
	for i := 0; i < len(AllRights); i++ {
		if have[AllRights[i]] {
			b.WriteByte(AllRights[i])
		}
	}
	return b.String(), nil
}

// ModifyRights applies op (FlagsReplace, FlagsAdd, FlagsRemove) with
// rights to old; both must be canonical (NormRights).
func ModifyRights(old string, op FlagOp, rights string) string {
	switch op {
	case FlagsAdd:
		r, _ := NormRights(old + rights)
		return r
	case FlagsRemove:
		var b strings.Builder
		for i := 0; i < len(old); i++ {
			if strings.IndexByte(rights, old[i]) < 0 {
				b.WriteByte(old[i])
			}
		}
		return b.String()
	}
	return rights
}

// ParseModRights parses a rights modification as SETACL takes it (RFC
// 4314 §3.1): an optional "+" (add) or "-" (remove), then rights letters.
// The obsolete "c" stands for "k" and "d" for "xte" (§2.1.1). It returns
// the operation and the canonical rights; any other letter is
// ErrInvalidRights.
func ParseModRights(s string) (FlagOp, string, error) {
	op := FlagsReplace
	switch {
	case strings.HasPrefix(s, "+"):
		op, s = FlagsAdd, s[1:]
	case strings.HasPrefix(s, "-"):
		op, s = FlagsRemove, s[1:]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'c':
			b.WriteString("k")
		case 'd':
			b.WriteString("xte")
		default:
			b.WriteByte(s[i])
		}
	}
	rights, err := NormRights(b.String())
	return op, rights, err
}

// ValidIdentifier checks an ACL identifier: a user name as user names
// go (non-empty UTF-8, at most 255 bytes, no NUL, CR or LF). Identifiers
// starting with "-" (negative rights) are not supported.
func ValidIdentifier(id string) error {
	if id == "" || len(id) > 255 || !utf8.ValidString(id) || strings.ContainsAny(id, "\x00\r\n") || strings.HasPrefix(id, "-") {
		return fmt.Errorf("identifier %q: %w", id, ErrInvalidIdentifier)
	}
	return nil
}

// RightsOf returns the union of the rights the entries give user (the
// entries for user and for Anyone), canonical.
func RightsOf(acl []ACLEntry, user string) string {
	var all string
	for _, e := range acl {
		if e.Identifier == user || e.Identifier == Anyone {
			all += e.Rights
		}
	}
	r, _ := NormRights(all)
	return r
}
