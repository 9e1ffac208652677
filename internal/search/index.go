package search

import (
	"slices"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/sorted"
	"github.com/tern-imap/tern/internal/store"
)

// Text keys from a full-text index (store.Account.SearchText).
//
// TextLeaves lists a key's text keys; TextQueries turns them into store
// queries; NewTextIndex holds the answers, and Candidate.Text consults
// them in Match: a message whose content is indexed matches a BODY or
// TEXT key exactly when the index says so (the store compared the same
// text the scan would), and a header key only when the index names it
// as a candidate and the header check passes (the stored header, no body
// read). Messages the index has not covered yet (pending) are evaluated
// by reading them, as without an index. Restrict narrows the messages to
// fetch at all.

// TextLeaves returns the text keys (BODY, TEXT, SUBJECT, FROM, TO, CC,
// BCC, HEADER) in key, in tree order.
func TextLeaves(key *imap.SearchKey) []*imap.SearchKey {
	var out []*imap.SearchKey
	var walk func(k *imap.SearchKey)
	walk = func(k *imap.SearchKey) {
		if k == nil {
			return
		}
		if textFields(k) != 0 {
			out = append(out, k)
			return
		}
		for _, ch := range k.Children {
			walk(ch)
		}
	}
	walk(key)
	return out
}

// textFields is the part of the searchable text (search.Doc) a text key
// reads, 0 for other keys. For header keys it is a superset: the exact
// field is checked on the header afterwards.
func textFields(k *imap.SearchKey) store.TextField {
	switch k.Op {
	case imap.SearchBody:
		return store.TextBody
	case imap.SearchText:
		return store.TextHeader | store.TextBody | store.TextMIME
	case imap.SearchSubject, imap.SearchHeader:
		return store.TextHeader
	case imap.SearchFrom, imap.SearchTo, imap.SearchCc, imap.SearchBcc:
		return store.TextHeader | store.TextAddress
	}
	return 0
}

// oneFieldKeys are the keys the store answers field by field, with
// their store field (store.TextOneField).
var oneFieldKeys = map[imap.SearchKeyOp]store.TextField{
	imap.SearchFrom:    store.TextFrom,
	imap.SearchTo:      store.TextTo,
	imap.SearchCc:      store.TextCc,
	imap.SearchBcc:     store.TextBcc,
	imap.SearchSubject: store.TextSubject,
}

// queryOf returns the store query for text key k: FROM..BCC and SUBJECT
// outside FUZZY ask for their one field, which the store decides exactly
// (FieldHolds), unless the needle is one FieldHolds cannot decide; other
// keys ask for the texts they read (textFields), a superset for header
// keys.
func queryOf(k *imap.SearchKey, fuzzy bool) store.TextQuery {
	needle := Fold(k.Str)
	if field, ok := oneFieldKeys[k.Op]; ok && !fuzzy && ExactFieldNeedle(needle) {
		return store.TextQuery{Fields: field, Needle: needle}
	}
	return store.TextQuery{Fields: textFields(k), Needle: needle, Fuzzy: fuzzy && k.Str != ""}
}

// TextQueries returns the store queries for leaves (from
// TextLeaves(key)): the text keys under a FUZZY key (RFC 6203) ask for
// fuzzy matches, with their relevancy.
func TextQueries(key *imap.SearchKey, leaves []*imap.SearchKey) []store.TextQuery {
	fuzzy := fuzzyLeaves(key)
	qs := make([]store.TextQuery, len(leaves))
	for i, k := range leaves {
		qs[i] = queryOf(k, fuzzy[k])
	}
	return qs
}

// fuzzyLeaves returns the text keys of key that a FUZZY key encloses.
func fuzzyLeaves(key *imap.SearchKey) map[*imap.SearchKey]bool {
	out := map[*imap.SearchKey]bool{}
	var walk func(k *imap.SearchKey, fuzzy bool)
	walk = func(k *imap.SearchKey, fuzzy bool) {
		if k == nil {
			return
		}
		if textFields(k) != 0 {
			if fuzzy {
				out[k] = true
			}
			return
		}
		for _, ch := range k.Children {
			walk(ch, fuzzy || k.Op == imap.SearchFuzzy)
		}
	}
	walk(key, false)
	return out
}

// TextIndex holds a store's answers to the text keys of one search.
type TextIndex struct {
	hits   map[*imap.SearchKey][]uint32
	scores map[*imap.SearchKey][]uint8 // fuzzy keys: relevancy, parallel to hits
	// byField holds the FROM..BCC and SUBJECT keys the store decided
	// field by field (store.TextOneField): like BODY and TEXT, their hits
	// are their matches among the indexed messages.
	byField map[*imap.SearchKey]bool
	pending []uint32
	covered []uint32 // store.TextResult.Covered
	// at is, per key, where decide found the last UID in its hits:
	// messages come in ascending UID order, so the next lookup starts
	// there (sorted.Seek).
	at map[*imap.SearchKey]int
}

// NewTextIndex pairs leaves with qs (TextQueries(key, leaves)) and res,
// the store's answer to qs.
func NewTextIndex(leaves []*imap.SearchKey, qs []store.TextQuery, res store.TextResult) *TextIndex {
	x := &TextIndex{hits: make(map[*imap.SearchKey][]uint32, len(leaves)), scores: map[*imap.SearchKey][]uint8{},
		byField: map[*imap.SearchKey]bool{}, pending: res.Pending, covered: res.Covered, at: make(map[*imap.SearchKey]int, len(leaves))}
	for i, k := range leaves {
		if i < len(res.Hits) {
			x.hits[k] = res.Hits[i]
			x.byField[k] = i < len(qs) && qs[i].Fields&store.TextOneField != 0
		}
		if i < len(res.Scores) && res.Scores[i] != nil {
			x.scores[k] = res.Scores[i]
		}
	}
	return x
}

// decide answers text key k for message uid from the index: decided is
// false when the message must be read (not indexed, or a header key
// whose candidate needs the field check). score is the relevancy of a
// fuzzy key's match (0 for exact keys).
func (x *TextIndex) decide(k *imap.SearchKey, uid uint32) (match bool, score uint8, decided bool) {
	hits, ok := x.hits[k]
	if !ok || x.Pending(uid) {
		return false, 0, false
	}
	from := x.at[k]
	if from > len(hits) || from > 0 && hits[from-1] >= uid {
		from = 0 // asked out of order: search from the start
	}
	i, found := sorted.Seek(hits, from, uid)
	x.at[k] = i
	if !found {
		return false, 0, true
	}
	switch k.Op {
	case imap.SearchBody, imap.SearchText:
		if s := x.scores[k]; i < len(s) {
			score = s[i]
		}
		return true, score, true
	}
	return x.byField[k], 0, x.byField[k]
}

// Pending reports whether message uid is not indexed yet (or was not
// in the mailbox the answer saw): the index decides none of its text
// keys, so matching it reads the message.
func (x *TextIndex) Pending(uid uint32) bool {
	return contains(x.pending, uid) || x.covered != nil && !contains(x.covered, uid)
}

func contains(sorted []uint32, v uint32) bool {
	_, ok := slices.BinarySearch(sorted, v)
	return ok
}

// Restrict returns the UIDs among uids (ascending) that can match key
// given the index's answers, or uids itself when the index does not
// narrow them (no text key every match must satisfy).
func (x *TextIndex) Restrict(key *imap.SearchKey, uids []uint32) []uint32 {
	set, ok := x.must(key)
	if !ok {
		return uids
	}
	return sorted.Intersect(uids, set)
}

// Decided splits uids (ascending) into the messages that match key by
// the index alone and those it cannot decide (not indexed yet: they are
// to be read and matched). ok is false unless key is made only of BODY
// and TEXT keys and FROM..BCC and SUBJECT keys decided field by field
// (byField), joined by AND, OR and NOT, outside FUZZY: their hits are exact (the
// store compared the text a scan compares), so a search of such a key
// needs no message fetched at all. Messages not indexed yet are never in
// match, whatever NOT says of them: they are read.
func (x *TextIndex) Decided(key *imap.SearchKey, uids []uint32) (match, read []uint32, ok bool) {
	set, ok := x.exact(key, uids)
	if !ok {
		return nil, nil, false
	}
	match = sorted.Intersect(uids, set)
	if len(x.pending) > 0 {
		read = sorted.Intersect(uids, x.pending)
		match = sorted.Remove(match, x.pending)
	}
	if x.covered != nil {
		// Not in the mailbox the answer saw (expunged since): read, which
		// finds them gone.
		if gone := sorted.Remove(slices.Clone(uids), x.covered); len(gone) > 0 {
			read = sorted.Union(read, gone)
			match = sorted.Remove(match, gone)
		}
	}
	return match, read, true
}

// exact returns the messages of all (ascending) matching k when the
// index alone decides k for every indexed message (see Decided); the
// messages not indexed yet may be among them either way.
func (x *TextIndex) exact(k *imap.SearchKey, all []uint32) ([]uint32, bool) {
	if x.byField[k] {
		return x.hits[k], true
	}
	switch k.Op {
	case imap.SearchBody, imap.SearchText:
		hits, ok := x.hits[k]
		if !ok || x.scores[k] != nil {
			return nil, false
		}
		return hits, true
	case imap.SearchAnd, imap.SearchOr:
		if len(k.Children) == 0 {
			return nil, false
		}
		var set []uint32
		for i, ch := range k.Children {
			s, ok := x.exact(ch, all)
			switch {
			case !ok:
				return nil, false
			case i == 0:
				set = s
			case k.Op == imap.SearchAnd:
				set = sorted.Intersect(set, s)
			default:
				set = sorted.Union(set, s)
			}
		}
		return set, true
	case imap.SearchNot:
		if len(k.Children) != 1 {
			return nil, false
		}
		s, ok := x.exact(k.Children[0], all)
		if !ok {
			return nil, false
		}
		return sorted.Remove(slices.Clone(all), s), true
	}
	return nil, false
}

// must returns a sorted set every message matching k lies in, or false
// if the index gives none.
func (x *TextIndex) must(k *imap.SearchKey) ([]uint32, bool) {
	if k == nil {
		return nil, false
	}
	if hits, ok := x.hits[k]; ok {
		return sorted.Union(hits, x.pending), true
	}
	switch k.Op {
	case imap.SearchFuzzy:
		// FUZZY k matches where k matches fuzzily, and the hits of the
		// text keys inside are their fuzzy matches.
		if len(k.Children) == 1 {
			return x.must(k.Children[0])
		}
	case imap.SearchAnd:
		var best []uint32
		found := false
		for _, ch := range k.Children {
			if s, ok := x.must(ch); ok && (!found || len(s) < len(best)) {
				best, found = s, true
			}
		}
		return best, found
	case imap.SearchOr:
		var all []uint32
		for _, ch := range k.Children {
			s, ok := x.must(ch)
			if !ok {
				return nil, false
			}
			all = sorted.Union(all, s)
		}
		return all, true
	}
	return nil, false
}

// NeedsHeader reports whether key still needs the stored header
// (store.WantHeader) when the index answers its text keys: only header
// keys (SUBJECT, FROM, ..., HEADER) check their candidates on it, and
// the messages not indexed yet are matched on it even when the index
// decides the others (FROM..BCC and SUBJECT by field). BODY and TEXT
// are decided by the index, and a message the index has not covered
// reads its header from the message itself.
func (x *TextIndex) NeedsHeader(key *imap.SearchKey) bool {
	for _, k := range TextLeaves(key) {
		if k.Op != imap.SearchBody && k.Op != imap.SearchText {
			return true
		}
	}
	return false
}
