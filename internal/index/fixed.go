package index

import (
	"context"
	"errors"
	"slices"

	msgsort "github.com/tern-imap/tern/internal/sort"
	"github.com/tern-imap/tern/internal/store"
)

// fixedWant is what the fixed-fields cache holds: fields that never change
// for a UID (a message's content is immutable), so the cache needs no
// invalidation beyond dropping expunged UIDs.
const fixedWant = store.WantEnvelope | store.WantThreading

// fixedFields are one message's cached immutable fields.
type fixedFields struct {
	envelope   []byte
	messageID  string
	inReplyTo  []string
	references []string
	subject    store.SubjectKey // computed once from envelope
}

func (f *fixedFields) size() int64 {
	n := int64(len(f.envelope)+len(f.messageID)+len(f.subject.Key)) + 120
	for _, s := range f.inReplyTo {
		n += int64(len(s)) + 16
	}
	for _, s := range f.references {
		n += int64(len(s)) + 16
	}
	return n
}

func (f *fixedFields) fill(m *store.Message, want store.Want) {
	if want&store.WantEnvelope != 0 {
		m.Envelope, m.BaseSubject = f.envelope, f.subject
	}
	if want&store.WantThreading != 0 {
		m.MessageID, m.InReplyTo, m.References = f.messageID, f.inReplyTo, f.references
	}
}

// cacheable reports whether Fetch can answer want from the index plus the
// fixed-fields cache: SORT and THREAD, which ask for the whole mailbox
// again and again (store.WantRepeated).
func cacheable(want store.Want) bool {
	return want&store.WantRepeated != 0 && want&^(indexWant|fixedWant|store.WantRepeated) == 0
}

// fixedGuess is the size fillFixed assumes for a message's fixed fields
// before any of the mailbox's are cached (an ENVELOPE and threading ids
// of everyday mail).
const fixedGuess = 512

// errFixedTooBig is fillFixed's answer when caching the fields would
// take one mailbox's cache past its share of the budget.
var errFixedTooBig = errors.New("fixed fields exceed the cache's share of the budget")

// fixedShare is the most one mailbox's fixed-fields cache may hold: half
// the budget, so the cache of the mailbox in use never crowds out its
// own columns, and a mailbox too large for it (a SORT or THREAD of a
// million messages) is answered from the store instead of holding its
// every ENVELOPE in memory.
func (x *Indexes) fixedShare() int64 { return x.budget / 2 }

// fillFixed makes sure the fixed fields of uids (ascending) are cached,
// reading the missing ones from the store in one Fetch. When they would
// not fit in the mailbox's share of the budget it reads nothing and
// returns errFixedTooBig.
func (a *account) fillFixed(ctx context.Context, mailboxID int64, uids []uint32) error {
	var missing []uint32
	var cached int64 // bytes already cached
	avg := int64(fixedGuess)
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		for _, u := range uids {
			if _, ok := b.fixed[u]; !ok {
				missing = append(missing, u)
			}
		}
		cached = b.fixedBytes + b.thread.size() // the two caches share the share
		if len(b.fixed) > 0 {
			avg = b.fixedBytes / int64(len(b.fixed))
		}
		return nil
	})
	if err != nil || len(missing) == 0 {
		return err
	}
	if cached+int64(len(missing))*avg > a.x.fixedShare() {
		return errFixedTooBig
	}
	got := make(map[uint32]*fixedFields, len(missing))
	var add int64
	err = a.Account.Fetch(ctx, mailboxID, missing, fixedWant, func(m *store.Message) error {
		f := &fixedFields{envelope: slices.Clone(m.Envelope), messageID: m.MessageID,
			inReplyTo: m.InReplyTo, references: m.References, subject: msgsort.EnvelopeSubject(m.Envelope)}
		got[m.UID] = f
		add += f.size()
		if cached+add > a.x.fixedShare() {
			return errFixedTooBig // larger than the guess: stop reading
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.keepFilled(mailboxID, func(b *Mailbox) {
		if b.fixed == nil {
			b.fixed = make(map[uint32]*fixedFields, len(got))
		}
		for u, f := range got {
			if _, ok := slices.BinarySearch(b.cols.uid, u); ok {
				b.fixed[u] = f
				b.fixedBytes += f.size()
			}
		}
	})
	return nil
}

// keepFilled stores what a cache fill read from the store: fn runs under
// the mailbox's write lock if its index is still loaded and alive (it
// may have been evicted or reloaded while the store was read; then the
// fill is dropped), and the indexes are kept within the budget after.
func (a *account) keepFilled(mailboxID int64, fn func(b *Mailbox)) {
	b := a.x.box(a.User(), a.id, mailboxID)
	b.mu.Lock()
	if b.loaded && !b.dead {
		fn(b)
	}
	b.mu.Unlock()
	a.x.evict(b)
}

// dropCached forgets the cached fields of an expunged UID; callers hold
// mu.
func (b *Mailbox) dropCached(uid uint32) {
	if f, ok := b.fixed[uid]; ok {
		b.fixedBytes -= f.size()
		delete(b.fixed, uid)
	}
	if c, ok := b.content[uid]; ok {
		b.contentBytes -= c.size()
		delete(b.content, uid)
	}
	if c, ok := b.bodies[uid]; ok {
		b.addBodyBytes(-c.cost())
		delete(b.bodies, uid)
	}
	if l, ok := b.lines[uid]; ok {
		b.forgetLines(uid, l)
	}
}

// dropCaches empties the per-UID caches; callers hold mu.
func (b *Mailbox) dropCaches() {
	b.fixed, b.fixedBytes = nil, 0
	b.thread = nil
	b.content, b.contentBytes = nil, 0
	b.addBodyBytes(-b.bodiesBytes)
	b.bodies = nil
	b.lines, b.linesBytes, b.linesNone = nil, 0, 0
	b.seen, b.seenBytes = nil, 0 // callers hold the write lock: no seenMu needed
}
