package index

import (
	"context"

	msgsort "github.com/tern-imap/tern/internal/sort"
	"github.com/tern-imap/tern/internal/sorted"
	"github.com/tern-imap/tern/internal/store"
)

// The thread cache keeps what THREAD needs of each message, in a few
// dozen bytes a message: its subject key (each distinct subject once),
// and its Message-ID and parent chain hashed (store.ThreadKeys). It lets
// a THREAD of a million messages be answered from memory within the
// fixed-fields share of the budget, where the fixed-fields cache (an
// ENVELOPE and the ids as strings, about 700 bytes a message) does not
// fit. Like that cache it needs no invalidation: a UID's fields never
// change, UIDs are never reused, and an expunged UID's entry only waits
// for the next fill to be dropped.

// threadWant is what the thread cache answers, besides the columns.
const threadWant = store.WantEnvelope | store.WantThreading

// threadCacheable reports whether Fetch can answer want from the columns
// plus the thread cache: THREAD, which asks for the whole mailbox again
// and again and needs only the subject key of the ENVELOPE.
func threadCacheable(want store.Want) bool {
	const hints = store.WantRepeated | store.WantSubjectOnly
	return want&hints == hints && want&^(indexWant|threadWant|hints) == 0
}

// threadCache is one mailbox's cache, as columns.
type threadCache struct {
	uid       []uint32      // ascending
	entry     []threadEntry // parallel to uid
	refs      []uint64      // every entry's parent chain, end to end
	subjects  []string      // the distinct subject keys
	subjectOf map[string]uint32
	textBytes int64 // bytes of the subjects' text
}

// threadEntry is one message's entry.
type threadEntry struct {
	id      uint64 // hashed Message-ID; 0: none
	refOff  uint32 // its chain is refs[refOff : refOff+refLen]
	refLen  uint32
	subject uint32 // index in subjects
	reply   bool
}

// Estimated bytes: a UID and an entry per message, a hashed id per
// reference, and per distinct subject its text, its string in subjects
// and its entry in subjectOf.
const (
	threadMessageBytes = 4 + 24
	threadSubjectBytes = 16 + 48
)

func (t *threadCache) size() int64 {
	if t == nil {
		return 0
	}
	return int64(len(t.uid))*threadMessageBytes + int64(len(t.refs))*8 + t.textBytes + int64(len(t.subjects))*threadSubjectBytes
}

// threadGuess is the size fillThread assumes for a message before any of
// the mailbox's are cached: a chain of six ids, a subject (40 bytes)
// shared with four other messages. bench/bigbox.sh's million messages
// took 100 bytes each.
const threadGuess = threadMessageBytes + 6*8 + (40+threadSubjectBytes)/5

// add appends one message, read from the store (in ascending UID order).
func (t *threadCache) add(m *store.Message) {
	k := msgsort.ThreadKeysOf(m.MessageID, m.InReplyTo, m.References, t.refs)
	s := m.BaseSubject
	if !s.Known {
		s = msgsort.EnvelopeSubject(m.Envelope)
	}
	t.uid = append(t.uid, m.UID)
	t.entry = append(t.entry, threadEntry{id: k.ID, refOff: uint32(len(t.refs)), refLen: uint32(len(k.Refs) - len(t.refs)),
		subject: t.intern(s.Key), reply: s.Reply})
	t.refs = k.Refs
}

func (t *threadCache) intern(key string) uint32 {
	if i, ok := t.subjectOf[key]; ok {
		return i
	}
	if t.subjectOf == nil {
		t.subjectOf = make(map[string]uint32)
	}
	i := uint32(len(t.subjects))
	t.subjects = append(t.subjects, key)
	t.subjectOf[key] = i
	t.textBytes += int64(len(key))
	return i
}

// find returns the position of uid in the cache, looking from position
// from on (Fetch asks in ascending order).
func (t *threadCache) find(uid uint32, from int) (int, bool) {
	if t == nil {
		return from, false
	}
	return sorted.Seek(t.uid, from, uid)
}

// fill copies entry i into m.
func (t *threadCache) fill(m *store.Message, i int, want store.Want) {
	e := &t.entry[i]
	if want&store.WantEnvelope != 0 {
		m.BaseSubject = store.SubjectKey{Key: t.subjects[e.subject], Reply: e.reply, Known: true}
	}
	if want&store.WantThreading != 0 {
		end := e.refOff + e.refLen
		m.ThreadKeys = store.ThreadKeys{Known: true, ID: e.id, Refs: t.refs[e.refOff:end:end]}
	}
}

// merged returns the union of t (nil: empty) and more, ascending, less
// the UIDs live does not hold (expunged); t's entries win over more's.
// t's chains and subjects stay where they are, unless the expunged
// messages' hold most of them: then everything kept is copied afresh, so
// a mailbox with steady new mail and expunges does not grow the cache.
func (t *threadCache) merged(more *threadCache, live []uint32) *threadCache {
	if t == nil {
		t = &threadCache{}
	}
	kept := alive(t.uid, live)
	liveRefs, liveSubjects := 0, 0
	used := make([]bool, len(t.subjects))
	for i := range t.uid {
		if e := &t.entry[i]; kept[i] {
			liveRefs += int(e.refLen)
			if !used[e.subject] {
				used[e.subject] = true
				liveSubjects++
			}
		}
	}
	compact := 2*liveRefs < len(t.refs) || 2*liveSubjects < len(t.subjects)
	out := &threadCache{
		uid:   make([]uint32, 0, len(t.uid)+len(more.uid)),
		entry: make([]threadEntry, 0, len(t.uid)+len(more.uid)),
	}
	if compact {
		out.refs = make([]uint64, 0, liveRefs+len(more.refs))
		out.subjectOf = make(map[string]uint32)
	} else {
		out.refs = make([]uint64, len(t.refs), len(t.refs)+len(more.refs))
		copy(out.refs, t.refs) // at the same offsets: t's entries stay valid
		out.subjects, out.subjectOf, out.textBytes = t.subjects, t.subjectOf, t.textBytes
		if out.subjectOf == nil {
			out.subjectOf = make(map[string]uint32, len(more.subjects))
		}
	}
	keptMore := alive(more.uid, live)
	i, j := 0, 0
	for i < len(t.uid) || j < len(more.uid) {
		switch {
		case j == len(more.uid) || (i < len(t.uid) && t.uid[i] <= more.uid[j]):
			if j < len(more.uid) && t.uid[i] == more.uid[j] {
				j++ // cached twice by fills that raced
			}
			if kept[i] {
				if compact {
					out.copyEntry(t, i)
				} else {
					out.uid = append(out.uid, t.uid[i])
					out.entry = append(out.entry, t.entry[i])
				}
			}
			i++
		default:
			if keptMore[j] {
				out.copyEntry(more, j)
			}
			j++
		}
	}
	return out
}

// alive reports, for each of uids (ascending), whether live (ascending)
// holds it: one walk along both.
func alive(uids, live []uint32) []bool {
	out := make([]bool, len(uids))
	at := 0
	for i, u := range uids {
		at, out[i] = sorted.Seek(live, at, u)
	}
	return out
}

// copyEntry appends entry i of from, with its chain and subject.
func (t *threadCache) copyEntry(from *threadCache, i int) {
	e := from.entry[i]
	refs := from.refs[e.refOff : e.refOff+e.refLen]
	e.refOff = uint32(len(t.refs))
	t.refs = append(t.refs, refs...)
	e.subject = t.intern(from.subjects[e.subject])
	t.uid = append(t.uid, from.uid[i])
	t.entry = append(t.entry, e)
}

// fillThread makes sure the thread cache holds uids (ascending), reading
// the missing ones from the store in one Fetch (read says it did). When
// they would take the mailbox's caches past their share of the budget it
// returns errFixedTooBig, reading nothing or stopping while it reads.
func (a *account) fillThread(ctx context.Context, mailboxID int64, uids []uint32) (read bool, err error) {
	var missing []uint32
	var cached int64 // bytes already cached for the mailbox
	avg := int64(threadGuess)
	err = a.with(ctx, mailboxID, func(b *Mailbox) error {
		at := 0
		for _, u := range uids {
			var ok bool
			if at, ok = b.thread.find(u, at); !ok {
				missing = append(missing, u)
			}
		}
		cached = b.fixedBytes + b.thread.size()
		if b.thread != nil && len(b.thread.uid) > 0 {
			avg = b.thread.size() / int64(len(b.thread.uid))
		}
		return nil
	})
	if err != nil || len(missing) == 0 {
		return false, err
	}
	share := a.x.fixedShare()
	if cached+int64(len(missing))*avg > share {
		return false, errFixedTooBig
	}
	more := &threadCache{}
	err = a.Account.Fetch(ctx, mailboxID, missing, threadWant, func(m *store.Message) error {
		more.add(m)
		if cached+more.size() > share {
			return errFixedTooBig // larger than the guess: stop reading
		}
		return nil
	})
	if err != nil {
		return true, err
	}
	if len(more.uid) > 0 { // none: the missing UIDs were expunged meanwhile
		a.keepFilled(mailboxID, func(b *Mailbox) { b.thread = b.thread.merged(more, b.cols.uid) })
	}
	return true, nil
}
