// Package sort implements the SORT and THREAD extensions' message
// ordering (RFC 5256, RFC 5957 display sort keys): base subject
// extraction, the sort keys, and the ORDEREDSUBJECT and REFERENCES
// threading algorithms. It works on data stored at delivery (dates, size,
// the IMAP-encoded ENVELOPE, message ids) and never reads message bodies.
package sort

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

// Key is a sort criterion.
type Key int

// Sort keys (RFC 5256 §3, RFC 5957 §3).
const (
	Arrival Key = iota
	Cc
	Date
	From
	Size
	Subject
	To
	DisplayFrom
	DisplayTo
	Relevancy // RFC 6203 §6: the highest relevancy first
)

// ParseKey maps an upper-case SORT key name to a Key.
func ParseKey(name string) (Key, bool) {
	switch name {
	case "ARRIVAL":
		return Arrival, true
	case "CC":
		return Cc, true
	case "DATE":
		return Date, true
	case "FROM":
		return From, true
	case "SIZE":
		return Size, true
	case "SUBJECT":
		return Subject, true
	case "TO":
		return To, true
	case "DISPLAYFROM":
		return DisplayFrom, true
	case "DISPLAYTO":
		return DisplayTo, true
	case "RELEVANCY":
		return Relevancy, true
	}
	return 0, false
}

// Criterion is one sort key, optionally reversed.
type Criterion struct {
	Key     Key
	Reverse bool
}

// Item is one message to sort or thread. Items are given in mailbox
// order (ascending sequence number), which breaks ties.
type Item struct {
	InternalDate time.Time
	SentDate     time.Time // zero if the message has no valid Date
	Size         int64
	Envelope     []byte // IMAP-encoded ENVELOPE as stored at delivery
	// For THREAD=REFERENCES (message ids without angle brackets), or
	// the same ids hashed (Keys, when Keys.Known; see ThreadKeysOf).
	MessageID  string
	InReplyTo  []string
	References []string
	Keys       store.ThreadKeys
	// Subject is the subject's key if the caller has it cached (Known);
	// otherwise it is computed from Envelope.
	Subject store.SubjectKey
	// Relevancy is the message's RFC 6203 relevancy score (the
	// Relevancy key), 1..100.
	Relevancy uint8
}

// EnvelopeSubject computes the subject key of a stored ENVELOPE.
func EnvelopeSubject(envelope []byte) store.SubjectKey {
	env, _ := parseEnvelopeFields(envelope, false) // a malformed one sorts as empty
	k, rf := SubjectKey(env.subject)
	return store.SubjectKey{Key: k, Reply: rf, Known: true}
}

// subject is the item's subject key, from the cache or computed.
func (it *Item) subject() store.SubjectKey {
	if it.Subject.Known {
		return it.Subject
	}
	return EnvelopeSubject(it.Envelope)
}

// NeedsEnvelope reports whether any criterion needs Item.Envelope.
func NeedsEnvelope(crit []Criterion) bool {
	for _, c := range crit {
		switch c.Key {
		case Cc, From, Subject, To, DisplayFrom, DisplayTo:
			return true
		}
	}
	return false
}

// needsAddresses reports whether any criterion sorts by an address.
func needsAddresses(crit []Criterion) bool {
	for _, c := range crit {
		switch c.Key {
		case Cc, From, To, DisplayFrom, DisplayTo:
			return true
		}
	}
	return false
}

// sentOrInternal is the date SORT DATE and THREAD use: the sent date, or
// the internal date when the message has none (RFC 5256 §2.2).
func (it *Item) sentOrInternal() time.Time {
	return sentOrInternal(it.SentDate, it.InternalDate)
}

func sentOrInternal(sent, internal time.Time) time.Time {
	if !sent.IsZero() {
		return sent
	}
	return internal
}

type keyed struct {
	idx  int
	strs []string // per criterion, for string keys
	nums []int64  // per criterion, for numeric keys
}

// Sort returns the indexes of items in the order crit asks for; messages
// equal under every criterion stay in mailbox order (RFC 5256 §3).
func Sort(items []Item, crit []Criterion) []int {
	if len(crit) == 1 && isNumeric(crit[0].Key) {
		return sortByNumber(items, crit[0])
	}
	n := len(crit)
	ks := make([]keyed, len(items))
	// One backing array per kind for all items: two small slices per
	// message were most of SORT's allocations.
	strs := make([]string, len(items)*n)
	nums := make([]int64, len(items)*n)
	needAddr := needsAddresses(crit)
	for i := range items {
		it := &items[i]
		k := keyed{idx: i, strs: strs[i*n : (i+1)*n : (i+1)*n], nums: nums[i*n : (i+1)*n : (i+1)*n]}
		var env envelope
		if needAddr {
			env, _ = parseEnvelope(it.Envelope) // a malformed one sorts as empty
		}
		for j, c := range crit {
			switch c.Key {
			case Arrival, Date, Size, Relevancy:
				k.nums[j] = numberKey(it, c.Key)
			case From:
				k.strs[j] = mailboxKey(env.from, env.hasFrom)
			case To:
				k.strs[j] = mailboxKey(env.to, env.hasTo)
			case Cc:
				k.strs[j] = mailboxKey(env.cc, env.hasCc)
			case DisplayFrom:
				k.strs[j] = displayKey(env.from, env.hasFrom)
			case DisplayTo:
				k.strs[j] = displayKey(env.to, env.hasTo)
			case Subject:
				k.strs[j] = it.subject().Key
			}
		}
		ks[i] = k
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		for j, c := range crit {
			var r int
			if isNumeric(c.Key) {
				r = cmp.Compare(a.nums[j], b.nums[j])
			} else {
				r = strings.Compare(a.strs[j], b.strs[j])
			}
			if c.Reverse {
				r = -r
			}
			if r != 0 {
				return r
			}
		}
		return cmp.Compare(a.idx, b.idx)
	})
	out := make([]int, len(ks))
	for i, k := range ks {
		out[i] = k.idx
	}
	return out
}

// isNumeric reports whether k compares numbers (numberKey).
func isNumeric(k Key) bool {
	switch k {
	case Arrival, Date, Size, Relevancy:
		return true
	}
	return false
}

// numberKey is it's value for the numeric sort key k.
func numberKey(it *Item, k Key) int64 {
	return NumberOf(k, it.InternalDate, it.SentDate, it.Size, it.Relevancy)
}

// NumberOf is the value the numeric sort key k (ARRIVAL, DATE, SIZE or
// RELEVANCY) compares for a message with these fields; sent is zero when
// the message has no valid Date (DATE then uses the internal date, RFC
// 5256 §2.2).
func NumberOf(k Key, internal, sent time.Time, size int64, relevancy uint8) int64 {
	switch k {
	case Arrival:
		return internal.UnixNano()
	case Date:
		return sentOrInternal(sent, internal).UnixNano()
	case Size:
		return size
	case Relevancy:
		return -int64(relevancy)
	}
	return 0
}

// OneNumber returns crit's criterion when it is a single numeric one
// (ARRIVAL, DATE, SIZE or RELEVANCY, the sorts clients ask for most),
// which SortNumbers orders from the numbers alone, without Items.
func OneNumber(crit []Criterion) (Criterion, bool) {
	if len(crit) == 1 && isNumeric(crit[0].Key) {
		return crit[0], true
	}
	return Criterion{}, false
}

// sortByNumber is Sort for one numeric criterion.
func sortByNumber(items []Item, c Criterion) []int {
	nums := make([]int64, len(items))
	for i := range items {
		nums[i] = numberKey(&items[i], c.Key)
	}
	return SortNumbers(nums, c.Reverse)
}

// SortNumbers returns the indexes of nums in ascending order of their
// values (descending with reverse); equal values keep their order (RFC
// 5256 §3: mailbox order).
func SortNumbers(nums []int64, reverse bool) []int {
	type numKeyed struct {
		num int64
		idx int
	}
	ks := make([]numKeyed, len(nums))
	for i, n := range nums {
		ks[i] = numKeyed{n, i}
	}
	slices.SortFunc(ks, func(a, b numKeyed) int {
		r := cmp.Compare(a.num, b.num)
		if reverse {
			r = -r
		}
		if r != 0 {
			return r
		}
		return cmp.Compare(a.idx, b.idx)
	})
	out := make([]int, len(ks))
	for i, k := range ks {
		out[i] = k.idx
	}
	return out
}

// mailboxKey is the FROM/TO/CC key: the addr-mailbox of the first
// address (for a group, the group name), i;ascii-casemap.
func mailboxKey(a address, ok bool) string {
	if !ok {
		return ""
	}
	return Casemap(a.mailbox)
}

// displayKey is the DISPLAYFROM/DISPLAYTO key (RFC 5957 §3): the decoded
// display name of the first address, or when it has none its addr-spec
// (for a group, the group name).
func displayKey(a address, ok bool) string {
	if !ok {
		return ""
	}
	if a.name != "" {
		if n := strings.TrimSpace(message.DecodeHeaderValue(a.name)); n != "" {
			return Casemap(n)
		}
	}
	if !a.hasHost {
		return Casemap(a.mailbox) // group start: the group name
	}
	return Casemap(a.mailbox + "@" + a.host)
}
