package postgres

import (
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// A STORE in one round trip. The general path (StoreFlags) reads the
// messages in one round trip and writes their new flags with the commit
// in a second. For up to flagUpdateChunk messages in up to orRangesMax
// runs of UIDs (most STOREs) whose keywords need
// no round trip of their own (none, or spellings and the mailbox's list
// known to the keyword cache), one statement computes the new flags in
// the database instead, from the same rules as backend.ApplyFlags, and
// travels with BEGIN, the user's lock and COMMIT (runTx): a write round
// trip fewer, the latency of a network round trip to the database on
// every flag change. Its result, read with COMMIT's, says what changed.
// Under store.fsync = "always" the change signal needs that result
// before COMMIT, so such a transaction still takes two round trips
// (wtx.lateChanges).

// oneTripFlags is a STORE for the one-statement path: the operation and
// its arguments, with keywords canonical (op Add or a replace) or folded
// (op Remove).
type oneTripFlags struct {
	mailboxID int64
	rs        uidRanges
	n         int // messages named
	op        store.FlagOp
	sys       int64
	kws       []string
	since     int64 // UNCHANGEDSINCE, or math.MaxInt64 without
}

// oneTripFlagsFor returns the one-statement form of a STORE, or false
// when it needs the general path: too many messages or runs of UIDs
// (the statement's UID condition is one BETWEEN per run, which bounds
// the index scan of any plan: a join alone let the cached generic plan
// read the whole mailbox), or keywords whose
// spelling or presence in the mailbox's list the cache does not know.
func (w *wtx) oneTripFlagsFor(mailboxID int64, uids []uint32, op store.FlagOp, opSys int64, opKws []string, unchangedSince uint64, hasUnchangedSince bool) (oneTripFlags, bool) {
	f := oneTripFlags{mailboxID: mailboxID, op: op, sys: opSys, since: math.MaxInt64, rs: toRanges(uids), n: len(uids)}
	if f.n == 0 || f.n > flagUpdateChunk || len(f.rs.lo) > orRangesMax {
		return oneTripFlags{}, false
	}
	if hasUnchangedSince && unchangedSince < math.MaxInt64 {
		f.since = int64(unchangedSince)
	}
	if op == store.FlagsRemove {
		f.kws = foldAll(opKws)
	} else if len(opKws) > 0 {
		breaks := w.a.s.breaks.Load()
		kws, ok := w.a.keywords.spellings(breaks, opKws)
		if !ok || !w.a.keywords.listed(breaks, mailboxID, foldAll(kws)) {
			return oneTripFlags{}, false
		}
		f.kws = kws
	}
	return f, true
}

// storedKeywords is a row's keyword list as an array.
const storedKeywords = `string_to_array(m.keywords, ' ')`

// foldedKeyword folds keyword k as strings.ToLower does: keywords are
// ASCII (backend.ValidKeyword), which lower() of the "C" collation folds
// alone, and sorts by byte as strings.Compare does.
func foldedKeyword(k string) string { return `lower(` + k + ` COLLATE "C")` }

// newSysSQL is the expression of a row's new system flags ($5: the
// operation's).
func newSysSQL(op store.FlagOp) string {
	switch op {
	case store.FlagsAdd:
		return `(m.sysflags | $5::bigint)`
	case store.FlagsRemove:
		return `(m.sysflags & (~ $5::bigint))`
	case store.FlagsReplaceKeepSeen:
		return fmt.Sprintf(`(($5::bigint & (~ %[1]d::bigint)) | (m.sysflags & %[1]d::bigint))`, backend.FlagSeen)
	}
	return `$5::bigint`
}

// newKeywordsSQL is the expression of a row's new keyword list, as
// backend.ApplyFlags makes it ($7: the operation's keywords; for a
// replace already formatted).
func newKeywordsSQL(op store.FlagOp, hasKeywords bool) string {
	switch {
	case op == store.FlagsReplace || op == store.FlagsReplaceKeepSeen:
		return `$7::text`
	case !hasKeywords:
		return `m.keywords`
	case op == store.FlagsAdd:
		// The stored list, then each new keyword not in it (ignoring
		// case), sorted by folded form.
		return `array_to_string(ARRAY(SELECT k FROM unnest(` + storedKeywords + ` || ARRAY(SELECT a FROM unnest($7::text[]) AS a
				WHERE ` + foldedKeyword("a") + ` <> ALL (string_to_array(` + foldedKeyword("m.keywords") + `, ' '))))
			WITH ORDINALITY AS t(k, o) ORDER BY ` + foldedKeyword("k") + `, o), ' ')`
	}
	// Remove: the stored list in its order, without the keywords $7
	// (folded).
	return `array_to_string(ARRAY(SELECT k FROM unnest(` + storedKeywords + `) WITH ORDINALITY AS t(k, o)
		WHERE ` + foldedKeyword("k") + ` <> ALL ($7::text[]) ORDER BY o), ' ')`
}

// oneTripFlagsSQL is the statement of f: it reads mailbox $1 of user $2
// (its new modseq, whether it is \Noselect) and its messages $3, moves
// to their new flags and that modseq those whose flags change and whose
// modseq is at most $4, and the mailbox's HIGHESTMODSEQ to it when any
// did. One row per message read, ascending, with its modseq before,
// whether it changed and its flags after; a \Noselect mailbox gives one
// row with no message, a missing one none. Every part sees the rows as
// they were before the statement.
func oneTripFlagsSQL(op store.FlagOp, hasKeywords bool, n int) string {
	sys, kws, uids := newSysSQL(op), newKeywordsSQL(op, hasKeywords), uidBetween("$3", "$6", n)
	return `WITH mb AS (SELECT id, noselect, highestmodseq + 1 AS ms FROM mailboxes WHERE id = $1 AND user_id = $2),
	cur AS (SELECT m.uid, m.modseq, m.sysflags, m.keywords, ` + sys + ` AS nsys, ` + kws + ` AS nkws
		FROM messages m WHERE m.mailbox_id = $1 AND ` + uids + `),
	upd AS (UPDATE messages m SET modseq = mb.ms, sysflags = c.nsys, keywords = c.nkws FROM mb, cur c
		WHERE NOT mb.noselect AND m.mailbox_id = $1 AND ` + uids + ` AND m.uid = c.uid AND c.modseq <= $4
			AND (c.nsys <> c.sysflags OR c.nkws <> c.keywords)
		RETURNING m.uid),
	hms AS (UPDATE mailboxes SET highestmodseq = mb.ms FROM mb WHERE mailboxes.id = mb.id AND EXISTS (SELECT 1 FROM upd))
	SELECT mb.noselect, mb.ms, c.uid, c.modseq, u.uid IS NOT NULL, CASE WHEN u.uid IS NULL THEN c.sysflags ELSE c.nsys END,
		CASE WHEN u.uid IS NULL THEN c.keywords ELSE c.nkws END
	FROM mb LEFT JOIN (cur c LEFT JOIN upd u ON u.uid = c.uid) ON NOT mb.noselect
	ORDER BY c.uid`
}

// queue queues f's statement for the commit; reading its result fills
// res (as StoreFlags's general path does) and the write's changes, or
// sets *gone to why the mailbox cannot take the change (nothing was
// written then).
func (f oneTripFlags) queue(w *wtx, res *store.StoreResult, gone *error) {
	args := []any{f.mailboxID, w.a.id, f.rs.lo, f.since, f.sys, f.rs.hi}
	switch {
	case f.op == store.FlagsReplace || f.op == store.FlagsReplaceKeepSeen:
		args = append(args, backend.FormatKeywords(slices.Clone(f.kws)))
	case len(f.kws) > 0:
		args = append(args, f.kws)
	}
	w.lateChanges = true
	w.tail.Queue(oneTripFlagsSQL(f.op, len(f.kws) > 0, len(f.rs.lo)), args...).Query(func(rows pgx.Rows) error {
		return f.read(w, rows, res, gone)
	})
}

// read reads the rows of oneTripFlagsSQL.
func (f oneTripFlags) read(w *wtx, rows pgx.Rows, res *store.StoreResult, gone *error) error {
	defer rows.Close()
	*res = store.StoreResult{Updated: make([]store.MessageMeta, 0, f.n)}
	*gone = fmt.Errorf("mailbox %d: %w", f.mailboxID, store.ErrNoSuchMailbox)
	fl := backend.FlagInterner{}
	for rows.Next() {
		var noSelect, changed bool
		var ms int64
		var uid, modseq, sys *int64
		var kws *string
		if err := rows.Scan(&noSelect, &ms, &uid, &modseq, &changed, &sys, &kws); err != nil {
			return fmt.Errorf("store flags: %w", err)
		}
		if *gone = nil; noSelect {
			*gone = fmt.Errorf("mailbox %d: %w", f.mailboxID, store.ErrNoSelect)
		}
		if uid == nil {
			continue
		}
		switch {
		case changed:
			res.ModSeq = uint64(ms)
			res.Updated = append(res.Updated, store.MessageMeta{UID: uint32(*uid), ModSeq: uint64(ms), Flags: fl.Flags(*sys, *kws)})
		case *modseq > f.since:
			res.Modified = append(res.Modified, uint32(*uid))
		default:
			res.Updated = append(res.Updated, store.MessageMeta{UID: uint32(*uid), ModSeq: uint64(*modseq), Flags: fl.Flags(*sys, *kws)})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store flags: %w", err)
	}
	if res.ModSeq != 0 {
		w.changed[f.mailboxID] = res.ModSeq
	}
	return nil
}
