// Package backend holds the rules every store backend applies the same
// way, so that two backends cannot drift apart on them: mailbox and user
// name validation, the encoding of flags as a system-flag bit set plus a
// sorted keyword list, STORE's flag arithmetic, dates with their zone,
// the header block and threading ids taken at delivery, and the
// normalisation of a SETMETADATA request. Nothing here does I/O.
package backend

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
)

// --- names ---

const (
	maxNameLen   = 1000
	maxNameDepth = 50
)

// ValidUserName checks a user name: 1-255 bytes of UTF-8 without NUL, CR
// or LF.
func ValidUserName(name string) error {
	if name == "" || len(name) > 255 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return fmt.Errorf("invalid user name %q", name)
	}
	return nil
}

// NormName validates a mailbox name and spells a leading INBOX component
// in upper case.
func NormName(name string) (string, error) {
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return "", fmt.Errorf("mailbox %q: %w", name, store.ErrInvalidName)
	}
	parts := strings.Split(name, store.Separator)
	if len(parts) > maxNameDepth {
		return "", fmt.Errorf("mailbox %q: too deep: %w", name, store.ErrInvalidName)
	}
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("mailbox %q: empty component: %w", name, store.ErrInvalidName)
		}
	}
	if parts[0] != "INBOX" && strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
		name = strings.Join(parts, store.Separator)
	}
	return name, nil
}

// LookupName normalizes a name used to find an existing mailbox; an
// invalid name cannot exist.
func LookupName(name string) (string, error) {
	n, err := NormName(name)
	if err != nil {
		return "", fmt.Errorf("mailbox %q: %w", name, store.ErrNoSuchMailbox)
	}
	return n, nil
}

// ChildRange returns bounds such that lo <= n < hi exactly for the names n
// below name in the hierarchy ("/" + 1 == "0").
func ChildRange(name string) (lo, hi string) {
	return name + "/", name + "0"
}

// SortMailboxes sorts mailboxes by name, INBOX first.
func SortMailboxes(mbs []store.MailboxInfo) {
	slices.SortStableFunc(mbs, func(x, y store.MailboxInfo) int {
		switch {
		case x.Name == y.Name:
			return 0
		case x.Name == "INBOX":
			return -1
		case y.Name == "INBOX":
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
}

// --- flags ---

// System flags as bits of the stored flag set.
const (
	FlagSeen = 1 << iota
	FlagAnswered
	FlagFlagged
	FlagDeleted
	FlagDraft
)

// sysFlags in sorted order of their names.
var sysFlags = [...]struct {
	bit  int64
	name string
}{
	{FlagAnswered, `\Answered`},
	{FlagDeleted, `\Deleted`},
	{FlagDraft, `\Draft`},
	{FlagFlagged, `\Flagged`},
	{FlagSeen, `\Seen`},
}

// ValidKeyword reports whether k is an IMAP atom usable as a keyword.
func ValidKeyword(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// SplitFlags separates system flags (as a bit set) from keywords (deduped
// case-insensitively, first spelling kept). \Recent is ignored.
func SplitFlags(flags []string) (sys int64, kws []string, err error) {
	seen := map[string]bool{}
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			if strings.EqualFold(f, `\Recent`) {
				continue
			}
			found := false
			for _, sf := range sysFlags {
				if strings.EqualFold(f, sf.name) {
					sys |= sf.bit
					found = true
					break
				}
			}
			if !found {
				return 0, nil, fmt.Errorf("unknown system flag %q", f)
			}
			continue
		}
		if !ValidKeyword(f) {
			return 0, nil, fmt.Errorf("invalid keyword %q", f)
		}
		fold := strings.ToLower(f)
		if !seen[fold] {
			seen[fold] = true
			kws = append(kws, f)
		}
	}
	return sys, kws, nil
}

// ParseKeywords splits a message's keywords as stored: space-separated,
// sorted by folded form.
func ParseKeywords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// FormatKeywords sorts kws (in place) by folded form and joins them as
// stored.
func FormatKeywords(kws []string) string {
	slices.SortFunc(kws, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return strings.Join(kws, " ")
}

// FlagList builds a MessageMeta flag list: system flags, then keywords.
func FlagList(sys int64, keywords string) []string {
	n := 0
	for _, sf := range sysFlags {
		if sys&sf.bit != 0 {
			n++
		}
	}
	kws := ParseKeywords(keywords)
	out := make([]string, 0, n+len(kws))
	for _, sf := range sysFlags {
		if sys&sf.bit != 0 {
			out = append(out, sf.name)
		}
	}
	return append(out, kws...)
}

// ApplyFlags computes new flags of a message.
func ApplyFlags(op store.FlagOp, sys int64, keywords string, opSys int64, opKws []string) (int64, string) {
	if op == store.FlagsReplaceKeepSeen {
		return opSys&^FlagSeen | sys&FlagSeen, FormatKeywords(slices.Clone(opKws))
	}
	if len(opKws) == 0 && op != store.FlagsReplace {
		// System flags only (+FLAGS \Seen): the stored keyword list, always
		// kept sorted, stays as it is; no split, sort and join per row.
		if op == store.FlagsAdd {
			return sys | opSys, keywords
		}
		return sys &^ opSys, keywords
	}
	switch op {
	case store.FlagsReplace:
		return opSys, FormatKeywords(slices.Clone(opKws))
	case store.FlagsAdd:
		cur := ParseKeywords(keywords)
		for _, k := range opKws {
			if !ContainsFold(cur, k) {
				cur = append(cur, k)
			}
		}
		return sys | opSys, FormatKeywords(cur)
	case store.FlagsRemove:
		cur := ParseKeywords(keywords)
		out := cur[:0]
		for _, k := range cur {
			if !ContainsFold(opKws, k) {
				out = append(out, k)
			}
		}
		return sys &^ opSys, strings.Join(out, " ")
	}
	return sys, keywords
}

// ContainsFold reports whether list holds k, ignoring case.
func ContainsFold(list []string, k string) bool {
	for _, v := range list {
		if strings.EqualFold(v, k) {
			return true
		}
	}
	return false
}

// FlagInterner shares one flag list between rows with the same flags
// (callers never modify a flag list), instead of one allocation per row.
type FlagInterner map[flagKey][]string

type flagKey struct {
	sys int64
	kws string
}

// Flags returns the flag list of (sys, kws), shared with earlier calls.
func (fi FlagInterner) Flags(sys int64, kws string) []string {
	k := flagKey{sys, kws}
	if f, ok := fi[k]; ok {
		return f
	}
	f := FlagList(sys, kws)
	fi[k] = f
	return f
}

// --- time ---

// SplitTime is t as Unix seconds and its zone's offset in seconds.
func SplitTime(t time.Time) (sec int64, tz int64) {
	_, off := t.Zone()
	return t.Unix(), int64(off)
}

// JoinTime is SplitTime's inverse.
func JoinTime(sec, tz int64) time.Time {
	loc := time.UTC
	if tz != 0 {
		loc = time.FixedZone("", int(tz))
	}
	return time.Unix(sec, 0).In(loc)
}

// --- delivery ---

// HeaderBlock is the raw top-level header of a message (what the part tree
// says it is), stored so SEARCH on header fields needs no body access.
func HeaderBlock(raw []byte, info *message.Info) []byte {
	root, err := message.DecodeParts(info.Parts)
	if err != nil || root == nil || root.HeaderEnd > int64(len(raw)) || root.HeaderStart > root.HeaderEnd {
		return nil
	}
	return raw[root.HeaderStart:root.HeaderEnd]
}

// Preview computes a new message's FETCH PREVIEW text (search.Preview)
// from its parse results; "" when it has no text or no part tree.
func Preview(raw []byte, info *message.Info) string {
	root, err := message.DecodeParts(info.Parts)
	if err != nil || root == nil {
		return ""
	}
	return search.Preview(bytes.NewReader(raw), root)
}

// maxThreadRefs bounds how many referenced ids one message contributes.
const maxThreadRefs = 100

// ThreadRefs returns the ids a message points at, nearest first: its
// In-Reply-To, then its References from the last.
func ThreadRefs(info *message.Info) []string {
	var ids []string
	ids = append(ids, info.InReplyTo...)
	for i := len(info.References) - 1; i >= 0; i-- {
		ids = append(ids, info.References[i])
	}
	if len(ids) > maxThreadRefs {
		ids = ids[:maxThreadRefs]
	}
	return ids
}

// JoinIDs joins message ids with spaces; an id holding white space (not
// valid in a msg-id) loses it.
func JoinIDs(ids []string) string {
	var b strings.Builder
	for _, id := range ids {
		id = strings.Join(strings.Fields(id), "")
		if id == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(id)
	}
	return b.String()
}

// --- metadata ---

// NormMetadataSet validates the entries of a SetMetadata call, lower-cases
// their names and keeps the last of repeated names.
func NormMetadataSet(entries []store.MetadataEntry) ([]store.MetadataEntry, error) {
	out := make([]store.MetadataEntry, 0, len(entries))
	at := map[string]int{}
	for _, e := range entries {
		n, err := store.NormMetadataEntry(e.Name)
		if err != nil {
			return nil, err
		}
		if n == "/private" || n == "/shared" {
			return nil, fmt.Errorf("entry %q: a namespace, not an entry: %w", e.Name, store.ErrInvalidMetadataEntry)
		}
		if len(e.Value) > store.MetadataMaxValueSize {
			return nil, &store.MetadataTooLargeError{Entry: n, Size: len(e.Value), Max: store.MetadataMaxValueSize}
		}
		e.Name = n
		if i, ok := at[n]; ok {
			out[i] = e
			continue
		}
		at[n] = len(out)
		out = append(out, e)
	}
	return out, nil
}

// ParseMessage runs message.Parse, never failing delivery: a parser error
// or panic yields empty parse results (logged to log for user).
func ParseMessage(log *slog.Logger, user string, raw []byte) (info *message.Info) {
	defer func() {
		if r := recover(); r != nil {
			log.Warn("message parser panicked; storing without structure", "user", user, "panic", r)
			info = &message.Info{}
		}
	}()
	info, err := message.Parse(raw)
	if err != nil || info == nil {
		log.Warn("message parser failed; storing without structure", "user", user, "err", err)
		return &message.Info{}
	}
	return info
}

// SetSeen computes SetPrivateSeen: the states of the existing messages
// uids (ascending) after setting their \Seen to seen, given their stored
// states old (ascending, a subset), and the UIDs whose state changes,
// which take modseq.
func SetSeen(uids []uint32, old []store.SeenState, seen bool, modseq uint64) (states []store.SeenState, changed []uint32) {
	j := 0
	for _, u := range uids {
		s := store.SeenState{UID: u}
		for j < len(old) && old[j].UID < u {
			j++
		}
		if j < len(old) && old[j].UID == u {
			s = old[j]
		}
		if s.Seen != seen {
			s.Seen, s.ModSeq = seen, modseq
			changed = append(changed, u)
		}
		states = append(states, s)
	}
	return states, changed
}
