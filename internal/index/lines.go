package index

import (
	"bytes"
	"context"
	"errors"
	"slices"

	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
)

// Field lines: SEARCH FROM, TO, CC, BCC and SUBJECT from memory.
//
// A client's search box asks these again and again, and each went to the
// store: on SQLite its full-text index (posting lists and the
// candidates' field lines, about a millisecond of CPU in a folder of a
// few hundred messages), on PostgreSQL, which keeps no text index, a
// read of every header of the mailbox. The mailbox index keeps each
// message's field lines (search.FieldLines: the folded, decoded texts
// those keys match, one line each, a few hundred bytes a message) once a
// one-field search has asked for them, and answers such searches from
// memory with search.FieldHolds, exactly as the store's index and the
// scan decide them. A message's content never changes for its UID, so
// expunged UIDs are all the cache drops; new mail is read when the next
// such search comes.

// linesStoreFirst is the most messages a fill reads the headers of when
// the store has a full-text index of its own: beyond it (a first search
// in a large mailbox) the store's index answers, which is cheaper than
// reading every header; so it does for a mailbox whose lines would not
// fit linesShare, or that holds messages without a stored header (its
// index decided them). A store without one (store.ErrNoTextIndex) would
// read every header for the search anyway, so there the cache fills at
// any size, as far as linesShare allows, and answers what it holds.
const linesStoreFirst = 2000

// linesGuess is the size a message's field lines are assumed to take
// before any of the mailbox's are cached (From, To, Cc and Subject of
// everyday mail, each address twice).
const linesGuess = 320

// linesEntry is what a cached message costs besides its lines (map slot
// and slice header).
const linesEntry = 48

// errLinesTooBig stops a fill whose lines turn out larger than expected
// at linesShare.
var errLinesTooBig = errors.New("field lines exceed the cache's share of the budget")

// linesShare is the most one mailbox's field lines may hold: a quarter
// of the budget.
func (x *Indexes) linesShare() int64 { return x.budget / 4 }

// fieldNames returns the search.FieldLineNames of qs, ok false unless
// every query is an exact one-field query (store.TextOneField, not
// fuzzy), which field lines decide.
func fieldNames(qs []store.TextQuery) ([]string, bool) {
	names := make([]string, len(qs))
	for i, q := range qs {
		name, ok := search.FieldLineNames[q.Fields]
		if !ok || q.Fuzzy || !search.ExactFieldNeedle(q.Needle) {
			return nil, false
		}
		names[i] = name
	}
	return names, len(qs) > 0
}

// SearchText answers exact one-field queries from the mailbox's field
// lines (filling them first) and passes every other query to the store.
// Messages whose lines are not cached (no stored header, new since the
// fill, or beyond linesShare when the store has no text index either)
// are Pending: the caller reads them.
func (a *account) SearchText(ctx context.Context, mailboxID int64, qs []store.TextQuery) (store.TextResult, error) {
	names, ok := fieldNames(qs)
	if !ok {
		return a.Account.SearchText(ctx, mailboxID, qs)
	}
	res, byStore, err := a.searchLines(ctx, mailboxID, qs, names)
	switch {
	case errors.Is(err, errStale):
		a.miss()
		return a.Account.SearchText(ctx, mailboxID, qs)
	case byStore:
		a.miss()
	case err == nil:
		a.x.hits.Add(1)
	}
	return res, err
}

// linesState is what decides where a one-field search is answered.
type linesState struct {
	missing int  // messages without an entry
	none    int  // entries without lines (no stored header)
	fits    bool // the missing ones' lines would fit linesShare
}

func (a *account) linesState(ctx context.Context, mailboxID int64) (linesState, error) {
	var st linesState
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		st.missing = len(b.cols.uid) - len(b.lines) // lines only holds UIDs of cols
		st.none = b.linesNone
		avg := int64(linesGuess)
		if len(b.lines) > 0 {
			avg = b.linesBytes / int64(len(b.lines))
		}
		st.fits = b.linesBytes+int64(st.missing)*avg <= a.x.linesShare()
		return nil
	})
	return st, err
}

// searchLines answers from the field lines, filling the missing ones
// when they fit, or (byStore) has the store's own text index answer when
// the lines would not decide every message at a fair price.
func (a *account) searchLines(ctx context.Context, mailboxID int64, qs []store.TextQuery, names []string) (res store.TextResult, byStore bool, err error) {
	// A store with a text index decides every message; one without would
	// read every header, so the cache answers what it holds.
	storeIndex := func() (store.TextResult, bool, error) {
		res, err := a.Account.SearchText(ctx, mailboxID, qs)
		return res, !errors.Is(err, store.ErrNoTextIndex), err
	}
	st, err := a.linesState(ctx, mailboxID)
	if err != nil {
		return res, false, err
	}
	if st.missing > linesStoreFirst || st.none > 0 || !st.fits {
		if res, ok, err := storeIndex(); ok {
			return res, true, err
		}
	}
	if st.missing > 0 && st.fits {
		if err := a.fillLines(ctx, mailboxID); err != nil {
			return res, false, err
		}
		if st, err = a.linesState(ctx, mailboxID); err != nil {
			return res, false, err
		}
		if st.none > 0 { // found without a stored header
			if res, ok, err := storeIndex(); ok {
				return res, true, err
			}
		}
	}
	var uids []uint32
	var lines [][]byte
	err = a.with(ctx, mailboxID, func(b *Mailbox) error {
		// Copied out (cached lines are never changed in place), so that
		// the matching runs without the lock.
		uids = slices.Clone(b.cols.uid)
		lines = make([][]byte, len(uids))
		for i, u := range uids {
			lines[i] = b.lines[u]
		}
		return nil
	})
	if err != nil {
		return res, false, err
	}
	return linesAnswer(qs, names, uids, lines), false, nil
}

// fillLines caches the field lines of the mailbox's messages that have
// none, read from the stored headers in one Fetch, as far as they fit
// linesShare (a fill that finds them larger than expected keeps what it
// read, and the rest stays Pending). Fills of one mailbox run one at a
// time: a session that waited finds the lines there.
func (a *account) fillLines(ctx context.Context, mailboxID int64) error {
	b := a.x.box(a.User(), a.id, mailboxID)
	b.fillMu.Lock()
	defer b.fillMu.Unlock()
	var missing []uint32
	var cached int64
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		for _, u := range b.cols.uid {
			if _, ok := b.lines[u]; !ok {
				missing = append(missing, u)
			}
		}
		cached = b.linesBytes
		return nil
	})
	if err != nil || len(missing) == 0 {
		return err
	}
	share := a.x.linesShare()
	got := make(map[uint32][]byte, len(missing))
	var add int64
	err = a.Account.Fetch(ctx, mailboxID, missing, store.WantHeader, func(m *store.Message) error {
		l := fieldLinesOf(m.Header)
		got[m.UID] = l
		add += linesSize(l)
		if cached+add > share {
			return errLinesTooBig // larger than expected: keep what was read
		}
		return nil
	})
	if err != nil && !errors.Is(err, errLinesTooBig) {
		return err
	}
	a.keepFilled(mailboxID, func(b *Mailbox) {
		if b.lines == nil {
			b.lines = make(map[uint32][]byte, len(got))
		}
		for u, l := range got {
			if _, ok := b.lines[u]; ok {
				continue
			}
			if _, ok := slices.BinarySearch(b.cols.uid, u); ok {
				b.lines[u] = l
				b.linesBytes += linesSize(l)
				if l == nil {
					b.linesNone++
				}
			}
		}
	})
	return nil
}

// fieldLinesOf returns the field lines of a stored header: nil when the
// message has none stored (or its header defeats the parser), empty when
// it has none of the fields.
func fieldLinesOf(header []byte) (lines []byte) {
	if header == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			lines = nil // left to the caller's read of the message, as the indexer leaves it
		}
	}()
	lines = bytes.Clone(search.FieldLines(header)) // tight: kept for the mailbox's life
	if lines == nil {
		lines = []byte{}
	}
	return lines
}

func linesSize(l []byte) int64 { return int64(len(l)) + linesEntry }

// forgetLines drops uid's entry l; callers hold mu.
func (b *Mailbox) forgetLines(uid uint32, l []byte) {
	b.linesBytes -= linesSize(l)
	if l == nil {
		b.linesNone--
	}
	delete(b.lines, uid)
}

// linesAnswer decides qs (field line names names) for the messages uids
// from their lines (nil: Pending).
func linesAnswer(qs []store.TextQuery, names []string, uids []uint32, lines [][]byte) store.TextResult {
	res := store.TextResult{Hits: make([][]uint32, len(qs)), Scores: make([][]uint8, len(qs)), Covered: uids}
	for i, u := range uids {
		l := lines[i]
		if l == nil {
			res.Pending = append(res.Pending, u)
			continue
		}
		for j, q := range qs {
			if search.FieldHolds(l, names[j], q.Needle) { // (a nil needle holds as an empty one)
				res.Hits[j] = append(res.Hits[j], u)
			}
		}
	}
	return res
}
