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
// reading every header. A store without one (store.ErrNoTextIndex) would
// read them for the search anyway, so there the cache fills at any size
// that fits linesShare.
const linesStoreFirst = 2000

// linesGuess is the size fillLines assumes for a message's field lines
// before any of the mailbox's are cached (From, To, Cc and Subject of
// everyday mail, each address twice).
const linesGuess = 320

// linesEntry is what a cached message costs besides its lines (map slot
// and slice header).
const linesEntry = 48

// errLinesTooBig is fillLines' answer when the mailbox's field lines
// would not fit linesShare.
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
// Messages whose lines are not cached (no stored header, or new since the
// fill) are Pending: the caller reads them.
func (a *account) SearchText(ctx context.Context, mailboxID int64, qs []store.TextQuery) (store.TextResult, error) {
	names, ok := fieldNames(qs)
	if !ok {
		return a.Account.SearchText(ctx, mailboxID, qs)
	}
	missing, err := a.linesMissing(ctx, mailboxID)
	if err != nil {
		return store.TextResult{}, err
	}
	if len(missing) > linesStoreFirst {
		res, err := a.Account.SearchText(ctx, mailboxID, qs)
		if !errors.Is(err, store.ErrNoTextIndex) {
			return res, err
		}
	}
	if err := a.fillLines(ctx, mailboxID, missing); err != nil {
		if errors.Is(err, errLinesTooBig) {
			a.miss()
			return a.Account.SearchText(ctx, mailboxID, qs)
		}
		return store.TextResult{}, err
	}
	var res store.TextResult
	err = a.with(ctx, mailboxID, func(b *Mailbox) error {
		res = b.linesAnswer(qs, names)
		return nil
	})
	if err == nil {
		a.x.hits.Add(1)
	}
	return res, err
}

// linesMissing returns the mailbox's UIDs whose field lines are not
// cached.
func (a *account) linesMissing(ctx context.Context, mailboxID int64) ([]uint32, error) {
	var missing []uint32
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		for _, u := range b.cols.uid {
			if _, ok := b.lines[u]; !ok {
				missing = append(missing, u)
			}
		}
		return nil
	})
	return missing, err
}

// fillLines caches the field lines of missing (ascending), read from
// the stored headers in one Fetch. When they would not fit linesShare it
// keeps nothing and returns errLinesTooBig.
func (a *account) fillLines(ctx context.Context, mailboxID int64, missing []uint32) error {
	if len(missing) == 0 {
		return nil
	}
	var cached int64
	avg := int64(linesGuess)
	err := a.with(ctx, mailboxID, func(b *Mailbox) error {
		cached = b.linesBytes
		if len(b.lines) > 0 {
			avg = b.linesBytes / int64(len(b.lines))
		}
		return nil
	})
	if err != nil {
		return err
	}
	share := a.x.linesShare()
	if cached+int64(len(missing))*avg > share {
		return errLinesTooBig
	}
	got := make(map[uint32][]byte, len(missing))
	var add int64
	err = a.Account.Fetch(ctx, mailboxID, missing, store.WantHeader, func(m *store.Message) error {
		if m.Header == nil {
			return nil // not stored: left to the caller, which reads the message
		}
		l := bytes.Clone(search.FieldLines(m.Header))
		if l == nil {
			l = []byte{} // no such fields: cached as known
		}
		got[m.UID] = l
		add += linesSize(l)
		if cached+add > share {
			return errLinesTooBig // larger than the guess: stop reading
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.keepFilled(mailboxID, func(b *Mailbox) {
		if b.lines == nil {
			b.lines = make(map[uint32][]byte, len(got))
		}
		for u, l := range got {
			if _, ok := b.lines[u]; ok {
				continue // another search filled it meanwhile
			}
			if _, ok := slices.BinarySearch(b.cols.uid, u); ok {
				b.lines[u] = l
				b.linesBytes += linesSize(l)
			}
		}
	})
	return nil
}

func linesSize(l []byte) int64 { return int64(len(l)) + linesEntry }

// linesAnswer decides qs (field line names names) for every message of
// the mailbox from the cached lines; callers hold mu (read).
func (b *Mailbox) linesAnswer(qs []store.TextQuery, names []string) store.TextResult {
	res := store.TextResult{Hits: make([][]uint32, len(qs)), Scores: make([][]uint8, len(qs))}
	for _, u := range b.cols.uid {
		l, ok := b.lines[u]
		if !ok {
			res.Pending = append(res.Pending, u)
			continue
		}
		for i, q := range qs {
			needle := q.Needle
			if needle == nil {
				needle = []byte{}
			}
			if search.FieldHolds(l, names[i], needle) {
				res.Hits[i] = append(res.Hits[i], u)
			}
		}
	}
	return res
}
