// Package search evaluates IMAP SEARCH keys (RFC 9051 §6.4.4, RFC 3501
// §6.4.4) against messages, including the extension keys MODSEQ (RFC 7162),
// OLDER/YOUNGER (RFC 5032), EMAILID/THREADID (RFC 8474) and
// SAVEDBEFORE/SAVEDON/SAVEDSINCE/SAVEDATESUPPORTED (RFC 8514).
//
// The server fetches each message's metadata with the fields Want(key)
// selects, fills a Candidate and calls Match. Keys that read message content
// (headers or body text) make Match call Candidate.Open once per message;
// decoded content is cached in the Candidate so several content keys over
// the same message read it only once. A Candidate can be reused for the next
// message after Release, which keeps its buffers: evaluation over large
// mailboxes then allocates almost nothing per message.
package search

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

// Want returns the metadata fields of store.Message that evaluating key
// needs. UID is always filled by the store. Content keys need the stored
// header; the part tree comes with the opened body (store.Body.Parts).
func Want(key *imap.SearchKey) store.Want {
	if key == nil {
		return 0
	}
	var w store.Want
	switch key.Op {
	case imap.SearchAnd, imap.SearchOr, imap.SearchNot, imap.SearchFuzzy:
		for _, ch := range key.Children {
			w |= Want(ch)
		}
	case imap.SearchAnswered, imap.SearchDeleted, imap.SearchDraft, imap.SearchFlagged,
		imap.SearchSeen, imap.SearchNew, imap.SearchUnanswered, imap.SearchUndeleted,
		imap.SearchUndraft, imap.SearchUnflagged, imap.SearchUnseen,
		imap.SearchKeyword, imap.SearchUnkeyword, imap.SearchModSeq:
		w |= store.WantFlags
	case imap.SearchBefore, imap.SearchOn, imap.SearchSince,
		imap.SearchSentBefore, imap.SearchSentOn, imap.SearchSentSince,
		imap.SearchOlder, imap.SearchYounger,
		imap.SearchSaveDateBefore, imap.SearchSaveDateOn, imap.SearchSaveDateSince:
		w |= store.WantDates
	case imap.SearchLarger, imap.SearchSmaller:
		w |= store.WantSize
	case imap.SearchEmailID, imap.SearchThreadID:
		w |= store.WantIDs
	case imap.SearchBcc, imap.SearchCc, imap.SearchFrom, imap.SearchTo, imap.SearchSubject,
		imap.SearchHeader:
		// The stored header answers these without opening the message.
		w |= store.WantHeader
	case imap.SearchBody, imap.SearchText:
		w |= store.WantHeader
	}
	return w
}

// FlagsOnly reports whether key depends on nothing but a message's flags
// (system flags and keywords; not \Recent, which is the session's), so
// that messages with the same flags all match or all fail
// (store.FlagMatcher).
func FlagsOnly(key *imap.SearchKey) bool {
	if key == nil {
		return false
	}
	switch key.Op {
	case imap.SearchAnd, imap.SearchOr, imap.SearchNot:
		for _, ch := range key.Children {
			if !FlagsOnly(ch) {
				return false
			}
		}
		return true
	case imap.SearchAll, imap.SearchAnswered, imap.SearchDeleted, imap.SearchDraft, imap.SearchFlagged,
		imap.SearchSeen, imap.SearchUnanswered, imap.SearchUndeleted,
		imap.SearchUndraft, imap.SearchUnflagged, imap.SearchUnseen,
		imap.SearchKeyword, imap.SearchUnkeyword:
		return true
	}
	return false
}

// NeedsBody reports whether evaluating key reads message content (header
// fields or body text), i.e. whether Match may call Candidate.Open. The SENT*
// keys use store.Message.SentDate and do not need content.
func NeedsBody(key *imap.SearchKey) bool {
	if key == nil {
		return false
	}
	switch key.Op {
	case imap.SearchAnd, imap.SearchOr, imap.SearchNot, imap.SearchFuzzy:
		for _, ch := range key.Children {
			if NeedsBody(ch) {
				return true
			}
		}
		return false
	case imap.SearchBcc, imap.SearchCc, imap.SearchFrom, imap.SearchTo, imap.SearchSubject,
		imap.SearchHeader, imap.SearchBody, imap.SearchText:
		return true
	}
	return false
}

// UsesModSeq reports whether key contains a MODSEQ criterion; the SEARCH
// response must then carry the (MODSEQ n) item (RFC 7162 §3.1.5).
func UsesModSeq(key *imap.SearchKey) bool {
	if key == nil {
		return false
	}
	if key.Op == imap.SearchModSeq {
		return true
	}
	for _, ch := range key.Children {
		if UsesModSeq(ch) {
			return true
		}
	}
	return false
}

// UsesSaved reports whether key references the saved search result "$"
// (RFC 5182), so the server must expand it into Candidate.Saved.
func UsesSaved(key *imap.SearchKey) bool {
	if key == nil {
		return false
	}
	if (key.Op == imap.SearchSeqSet || key.Op == imap.SearchUID) && key.Set.Saved {
		return true
	}
	for _, ch := range key.Children {
		if UsesSaved(ch) {
			return true
		}
	}
	return false
}

// Candidate is one message under evaluation.
//
// The exported fields are set by the caller; the unexported ones cache
// content read through Open. To evaluate the next message with the same
// Candidate, call Release, then set the fields again.
type Candidate struct {
	SeqNum uint32         // message sequence number in the session's view
	Msg    *store.Message // filled per Want(key); Msg.UID always set
	Recent bool           // the session sees this message as \Recent
	MaxSeq uint32         // largest sequence number ("*" in a sequence set)
	MaxUID uint32         // largest UID in the mailbox ("*" in a UID set)
	// Saved is the SEARCHRES saved result "$" expanded to the UIDs it
	// references, sorted ascending (nil or empty: "$" matches nothing).
	// "$" denotes the same messages in SEARCH SEQSET and UID keys alike.
	Saved []uint32
	// Open returns the raw message and its part tree. It is called at most
	// once per message, and only when a content key must be evaluated. If
	// the returned ReaderAt is also an io.Closer, Release closes it.
	Open func() (io.ReaderAt, *message.Part, error)
	// Text, if set, answers text keys for the messages it has indexed
	// (see TextIndex); others are read through Open.
	Text *TextIndex

	opened  bool
	openErr error
	r       io.ReaderAt
	root    *message.Part

	rawDone bool
	rawErr  error
	hdrDone bool
	hdrErr  error
	fields  []field // top-level header fields
	hdrRaw  []byte  // raw top-level header
	hdrText []byte  // folded, decoded "name: value\n" lines
	// fieldText is one field's value as eachNamed decodes it.
	fieldText []byte

	bodyDone bool
	bodyErr  error
	bodyText []byte // folded decoded body text of all text parts
	mimeText []byte // folded decoded MIME headers of body parts (for TEXT)

	// fuzzy is how many FUZZY keys enclose the key under evaluation;
	// scoreSum and scoreN add up the relevancy of the fuzzy text keys
	// that matched this message (Relevancy).
	fuzzy    int
	scoreSum int
	scoreN   int
	addrText []byte // normalized address texts of fuzzy address keys

	scratch  []byte
	scratch2 []byte
	scratch3 []byte
	scratch4 []byte
	needle   []byte
}

// field is one header field of hdrRaw/hdrText: name is a range of hdrRaw
// (the whole raw field, folding included, ends at rawEnd), value a range of
// hdrText (decoded and case folded).
type field struct {
	nameStart, nameEnd int
	rawEnd             int
	valStart, valEnd   int
}

// Release drops the content cached for the current message and closes the
// reader Open returned if it is an io.Closer. Buffers are kept for reuse.
func (c *Candidate) Release() error {
	var err error
	if cl, ok := c.r.(io.Closer); ok && c.r != nil {
		if cerr := cl.Close(); cerr != nil {
			err = fmt.Errorf("search: close message: %w", cerr)
		}
	}
	c.opened, c.openErr, c.r, c.root = false, nil, nil, nil
	c.rawDone, c.rawErr = false, nil
	c.hdrDone, c.hdrErr = false, nil
	c.fields = c.fields[:0]
	c.hdrRaw = c.hdrRaw[:0]
	c.hdrText = c.hdrText[:0]
	c.bodyDone, c.bodyErr = false, nil
	c.bodyText = c.bodyText[:0]
	c.mimeText = c.mimeText[:0]
	c.fuzzy, c.scoreSum, c.scoreN = 0, 0, 0
	return err
}

// Relevancy is the RFC 6203 relevancy score (1..100) of the message
// Match last accepted: the mean score of the fuzzy text keys it matched,
// 100 when none did (exact keys only, or FUZZY over non-text keys, which
// match exactly).
func (c *Candidate) Relevancy() uint8 {
	if c.scoreN == 0 {
		return 100
	}
	return uint8((c.scoreSum + c.scoreN/2) / c.scoreN)
}

// addScore records the relevancy of a fuzzy text key that matched.
func (c *Candidate) addScore(s uint8) {
	c.scoreSum += int(s)
	c.scoreN++
}

// UsesFuzzy reports whether key holds a FUZZY key (RFC 6203).
func UsesFuzzy(key *imap.SearchKey) bool {
	if key == nil {
		return false
	}
	if key.Op == imap.SearchFuzzy {
		return true
	}
	for _, ch := range key.Children {
		if UsesFuzzy(ch) {
			return true
		}
	}
	return false
}

var errNoMessage = errors.New("search: candidate has no message")

// Match reports whether the message c matches key. now is the reference
// time for OLDER and YOUNGER. An error means content could not be read.
func Match(key *imap.SearchKey, c *Candidate, now time.Time) (bool, error) {
	if c == nil || c.Msg == nil {
		return false, errNoMessage
	}
	if key == nil {
		return true, nil
	}
	return c.match(key, now)
}

func (c *Candidate) match(key *imap.SearchKey, now time.Time) (bool, error) {
	m := c.Msg
	if c.Text != nil {
		if ok, score, decided := c.Text.decide(key, m.UID); decided {
			if ok && score > 0 {
				c.addScore(score)
			}
			return ok, nil
		}
	}
	if c.fuzzy > 0 && isTextKey(key.Op) {
		return c.matchFuzzy(key)
	}
	switch key.Op {
	case imap.SearchAll:
		return true, nil
	case imap.SearchAnd:
		// Cheap keys first: a failing metadata key spares reading content.
		for pass := 0; pass < 2; pass++ {
			for _, ch := range key.Children {
				if NeedsBody(ch) != (pass == 1) {
					continue
				}
				ok, err := c.match(ch, now)
				if err != nil || !ok {
					return false, err
				}
			}
		}
		return true, nil
	case imap.SearchOr:
		for pass := 0; pass < 2; pass++ {
			for _, ch := range key.Children {
				if NeedsBody(ch) != (pass == 1) {
					continue
				}
				ok, err := c.match(ch, now)
				if err != nil || ok {
					return ok, err
				}
			}
		}
		return false, nil
	case imap.SearchNot:
		if len(key.Children) != 1 {
			return false, fmt.Errorf("search: NOT with %d operands", len(key.Children))
		}
		ok, err := c.match(key.Children[0], now)
		return !ok && err == nil, err
	case imap.SearchFuzzy:
		// Text keys inside match fuzzily; others exactly (RFC 6203 §5
		// lets a server decide that fuzzy matching is meaningless for a
		// key: flags, dates, sizes and sets match as without FUZZY).
		if len(key.Children) != 1 {
			return false, fmt.Errorf("search: FUZZY with %d operands", len(key.Children))
		}
		c.fuzzy++
		ok, err := c.match(key.Children[0], now)
		c.fuzzy--
		return ok, err

	case imap.SearchSeqSet:
		if key.Set.Saved {
			return c.inSaved(), nil
		}
		return inSet(key.Set, c.SeqNum, c.MaxSeq), nil
	case imap.SearchUID:
		if key.Set.Saved {
			return c.inSaved(), nil
		}
		return inSet(key.Set, m.UID, c.MaxUID), nil

	case imap.SearchAnswered:
		return hasFlag(m.Flags, `\Answered`), nil
	case imap.SearchDeleted:
		return hasFlag(m.Flags, `\Deleted`), nil
	case imap.SearchDraft:
		return hasFlag(m.Flags, `\Draft`), nil
	case imap.SearchFlagged:
		return hasFlag(m.Flags, `\Flagged`), nil
	case imap.SearchSeen:
		return hasFlag(m.Flags, `\Seen`), nil
	case imap.SearchUnanswered:
		return !hasFlag(m.Flags, `\Answered`), nil
	case imap.SearchUndeleted:
		return !hasFlag(m.Flags, `\Deleted`), nil
	case imap.SearchUndraft:
		return !hasFlag(m.Flags, `\Draft`), nil
	case imap.SearchUnflagged:
		return !hasFlag(m.Flags, `\Flagged`), nil
	case imap.SearchUnseen:
		return !hasFlag(m.Flags, `\Seen`), nil
	case imap.SearchRecent:
		return c.Recent, nil
	case imap.SearchNew:
		return c.Recent && !hasFlag(m.Flags, `\Seen`), nil
	case imap.SearchOld:
		return !c.Recent, nil
	case imap.SearchKeyword:
		return hasFlag(m.Flags, key.Str), nil
	case imap.SearchUnkeyword:
		return !hasFlag(m.Flags, key.Str), nil

	case imap.SearchBefore:
		return dayOf(m.InternalDate) < dayOf(key.Date), nil
	case imap.SearchOn:
		return dayOf(m.InternalDate) == dayOf(key.Date), nil
	case imap.SearchSince:
		return dayOf(m.InternalDate) >= dayOf(key.Date), nil
	case imap.SearchSentBefore:
		return dayOf(sentDate(m)) < dayOf(key.Date), nil
	case imap.SearchSentOn:
		return dayOf(sentDate(m)) == dayOf(key.Date), nil
	case imap.SearchSentSince:
		return dayOf(sentDate(m)) >= dayOf(key.Date), nil
	case imap.SearchSaveDateBefore:
		return !m.SaveDate.IsZero() && dayOf(m.SaveDate) < dayOf(key.Date), nil
	case imap.SearchSaveDateOn:
		return !m.SaveDate.IsZero() && dayOf(m.SaveDate) == dayOf(key.Date), nil
	case imap.SearchSaveDateSince:
		return !m.SaveDate.IsZero() && dayOf(m.SaveDate) >= dayOf(key.Date), nil
	case imap.SearchSaveDateSupported:
		return true, nil
	case imap.SearchOlder:
		return m.InternalDate.Unix() < cutoff(now, key.Num), nil
	case imap.SearchYounger:
		return m.InternalDate.Unix() >= cutoff(now, key.Num), nil

	case imap.SearchLarger:
		return m.Size > 0 && uint64(m.Size) > key.Num, nil
	case imap.SearchSmaller:
		return m.Size < 0 || uint64(m.Size) < key.Num, nil
	case imap.SearchModSeq:
		return m.ModSeq >= key.Num, nil
	case imap.SearchEmailID:
		return m.EmailID != "" && m.EmailID == key.Str, nil
	case imap.SearchThreadID:
		return m.ThreadID != "" && m.ThreadID == key.Str, nil

	case imap.SearchFrom:
		return c.matchAddress("From", key.Str)
	case imap.SearchTo:
		return c.matchAddress("To", key.Str)
	case imap.SearchCc:
		return c.matchAddress("Cc", key.Str)
	case imap.SearchBcc:
		return c.matchAddress("Bcc", key.Str)
	case imap.SearchSubject:
		return c.matchHeader("Subject", key.Str)
	case imap.SearchHeader:
		return c.matchHeader(key.Field, key.Str)
	case imap.SearchBody:
		return c.matchBody(key.Str)
	case imap.SearchText:
		return c.matchText(key.Str)
	}
	return false, fmt.Errorf("search: unsupported key %q", key.Op)
}

func (c *Candidate) inSaved() bool {
	_, found := slices.BinarySearch(c.Saved, c.Msg.UID)
	return found
}

// inSet reports whether n lies in set, with 0 ("*") standing for max.
func inSet(set imap.NumSet, n, max uint32) bool {
	for _, r := range set.Ranges {
		lo, hi := r.Start, r.Stop
		if lo == 0 {
			lo = max
		}
		if hi == 0 {
			hi = max
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if n >= lo && n <= hi {
			return true
		}
	}
	return false
}

// hasFlag reports whether flags holds flag, compared case-insensitively
// (flags and keywords are case-insensitive in IMAP).
func hasFlag(flags []string, flag string) bool {
	for _, f := range flags {
		if len(f) == len(flag) && strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// dayOf maps t to an ordered day number in t's own time zone: the RFC's
// "disregarding time and timezone".
func dayOf(t time.Time) int {
	y, m, d := t.Date()
	return y*512 + int(m)*32 + d
}

// sentDate is the Date: header's date, or the internal date when the
// message has none (or an unparseable one), as RFC 5256 prescribes for SORT.
func sentDate(m *store.Message) time.Time {
	if m.SentDate.IsZero() {
		return m.InternalDate
	}
	return m.SentDate
}

// cutoff is now minus secs, in Unix seconds, without overflow.
func cutoff(now time.Time, secs uint64) int64 {
	const maxSecs = 1 << 62
	if secs > maxSecs {
		secs = maxSecs
	}
	return now.Unix() - int64(secs)
}

// PerMessage reports whether key's answer for a message depends only on
// that message's own state (flags, modseq, dates, size, UID, content),
// so that a live result (CONTEXT=SEARCH UPDATE) need only re-evaluate
// the messages that changed. Sequence numbers shift on expunges, "$"
// changes with SAVE, "*" with the mailbox's last message, and
// OLDER/YOUNGER with the clock: keys holding those are not.
func PerMessage(key *imap.SearchKey) bool {
	if key == nil {
		return true
	}
	switch key.Op {
	case imap.SearchSeqSet, imap.SearchOlder, imap.SearchYounger:
		return false
	case imap.SearchUID:
		if key.Set.Saved {
			return false
		}
		for _, r := range key.Set.Ranges {
			if r.Start == 0 || r.Stop == 0 {
				return false
			}
		}
	}
	for _, ch := range key.Children {
		if !PerMessage(ch) {
			return false
		}
	}
	return true
}
