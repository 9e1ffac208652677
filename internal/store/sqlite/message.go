package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// msgRow is one messages row.
type msgRow struct {
	uid       uint32
	modseq    uint64
	sys       int64
	kws       string
	contentID int64
	size      int64
	idate     int64
	itz       int64
	sdate     int64
}

// msgRows reads the messages of a mailbox among rs (or all), ascending.
func (w *wtx) msgRows(mailboxID int64, rs []uidRange, all, onlyDeleted bool) ([]msgRow, error) {
	if !all && len(rs) == 0 {
		return nil, nil
	}
	from, table, cond, args := "", "messages m", "1", []any{mailboxID}
	if !all {
		var rargs []any
		from, cond, rargs = uidMatch(rs)
		args = append(args, rargs...)
	}
	if onlyDeleted {
		cond += " AND (m.sysflags & 8) != 0"
		if all {
			// Without statistics the planner prefers the primary key,
			// which reads the whole mailbox.
			table += " INDEXED BY messages_deleted"
		}
	}
	rows, err := w.tx.QueryContext(w.ctx, `SELECT m.uid, m.modseq, m.sysflags, m.keywords, m.content_id, m.size, m.internal_date, m.internal_tz, m.save_date
		FROM `+from+table+` WHERE m.mailbox_id = ?1 AND `+cond+` ORDER BY m.uid`, args...)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	defer rows.Close()
	var out []msgRow
	for rows.Next() {
		var r msgRow
		if err := rows.Scan(&r.uid, &r.modseq, &r.sys, &r.kws, &r.contentID, &r.size, &r.idate, &r.itz, &r.sdate); err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return out, nil
}

// flagRow is the flag state of one message.
type flagRow struct {
	uid    uint32
	modseq uint64
	sys    int64
	kws    string
}

// flagRows reads the flags of the messages of a mailbox among rs, ascending.
func (w *wtx) flagRows(mailboxID int64, rs []uidRange) ([]flagRow, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	from, cond, rargs := uidMatch(rs)
	rows, err := w.tx.QueryContext(w.ctx, `SELECT m.uid, m.modseq, m.sysflags, m.keywords FROM `+from+`messages m
		WHERE m.mailbox_id = ?1 AND `+cond+` ORDER BY m.uid`, append([]any{mailboxID}, rargs...)...)
	if err != nil {
		return nil, fmt.Errorf("read flags: %w", err)
	}
	defer rows.Close()
	var out []flagRow
	for rows.Next() {
		var r flagRow
		if err := rows.Scan(&r.uid, &r.modseq, &r.sys, &r.kws); err != nil {
			return nil, fmt.Errorf("read flags: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read flags: %w", err)
	}
	return out, nil
}

// insertMsg inserts one messages row (Append, Copy).
const insertMsg = `INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, content_id, size, internal_date, internal_tz, save_date)
	VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertCopies adds rows (from any mailbox) to mailbox d with new UIDs in
// order, keeping flags and internal dates; SaveDate becomes now unless
// keepSaveDate. d is the destination as this transaction has it (read
// and kept current by the caller); its UIDNEXT and HIGHESTMODSEQ are
// advanced.
func (w *wtx) insertCopies(d *mbox, rows []msgRow, keepSaveDate bool) ([]uint32, error) {
	if uint64(d.uidNext)+uint64(len(rows)) > math.MaxUint32 {
		return nil, fmt.Errorf("mailbox %q: UIDs exhausted", d.name)
	}
	// The rows lack the content fields the index keeps (sent date, object
	// ids): the index catches up with a query.
	w.delta(d).Unusable = true
	modseq := d.highest + 1
	now := time.Now().Unix()
	uids := make([]uint32, len(rows))
	var kws []string
	seen := map[string]bool{}
	for i, r := range rows {
		uid := d.uidNext + uint32(i)
		save := now
		if keepSaveDate {
			save = r.sdate
		}
		if _, err := w.tx.ExecContext(w.ctx, insertMsg, d.id, uid, modseq, r.sys, r.kws, r.contentID, r.size, r.idate, r.itz, save); err != nil {
			return nil, fmt.Errorf("copy messages: %w", err)
		}
		uids[i] = uid
		for _, k := range backend.ParseKeywords(r.kws) {
			if !seen[k] {
				seen[k] = true
				kws = append(kws, k)
			}
		}
	}
	if _, err := w.addMailboxKeywords(d.id, kws); err != nil {
		return nil, err
	}
	if err := w.logUIDs(d.id, modseq, d.uidNext); err != nil {
		return nil, err
	}
	if _, err := w.tx.ExecContext(w.ctx, setUIDNextModSeq, d.uidNext+uint32(len(rows)), modseq, d.id); err != nil {
		return nil, fmt.Errorf("copy messages: %w", err)
	}
	d.uidNext += uint32(len(rows))
	d.highest = modseq
	w.changed[d.id] = modseq
	return uids, nil
}

const (
	setUIDNextModSeq = `UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?`
	setModSeq        = `UPDATE mailboxes SET highestmodseq = ? WHERE id = ?`
)

// expungeRows removes rows (at least one) from mailbox m, leaving
// tombstones, and returns the mailbox's new modseq. m is the mailbox as
// this transaction has it; its HIGHESTMODSEQ is advanced.
func (w *wtx) expungeRows(m *mbox, rows []msgRow) (uint64, error) {
	od := w.delta(m)
	modseq := m.highest + 1
	uids := make([]uint32, len(rows))
	for i, r := range rows {
		uids[i] = r.uid
	}
	rs := toRanges(uids)
	cond, args := uidIn("uid", rs, 2)
	res, err := w.tx.ExecContext(w.ctx, `DELETE FROM messages WHERE mailbox_id = ?1 AND `+cond, append([]any{m.id}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("expunge: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(uids)) {
		return 0, fmt.Errorf("expunge: deleted %d of %d messages (%v)", n, len(uids), err)
	}
	for _, r := range rs {
		if _, err := w.tx.ExecContext(w.ctx, `INSERT OR REPLACE INTO expunged(mailbox_id, uid_lo, uid_hi, modseq) VALUES(?, ?, ?, ?)`,
			m.id, r.lo, r.hi, modseq); err != nil {
			return 0, fmt.Errorf("expunge: %w", err)
		}
	}
	if _, err := w.tx.ExecContext(w.ctx, setModSeq, modseq, m.id); err != nil {
		return 0, fmt.Errorf("expunge: %w", err)
	}
	m.highest = modseq
	for _, r := range rows {
		od.AddExpunged(r.uid, modseq)
	}
	od.D.Head = m.head()
	w.changed[m.id] = modseq
	w.gc = true
	return modseq, nil
}

func (a *account) Append(ctx context.Context, mailbox string, msgs []store.NewMessage) (store.AppendResult, error) {
	var res store.AppendResult
	n, err := backend.LookupName(mailbox)
	if err != nil {
		return res, err
	}
	type prep struct {
		info    *message.Info
		header  []byte
		lines   []byte // field lines for the indexing queue (nil: none)
		preview string
		sys     int64
		kws     []string
		idate   time.Time
	}
	preps := make([]prep, len(msgs))
	bodies := make([][]byte, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		sys, kws, err := backend.SplitFlags(m.Flags)
		if err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
		idate := m.InternalDate
		if idate.IsZero() {
			idate = now
		}
		info := backend.ParseMessage(a.s.log, a.u.name, m.Body)
		header := backend.HeaderBlock(m.Body, info)
		lines, _ := fieldLines(header)
		preps[i] = prep{info: info, header: header, lines: lines, preview: backend.Preview(m.Body, info), sys: sys, kws: kws, idate: idate}
		bodies[i] = m.Body
	}
	if a.closed.Load() {
		return res, fmt.Errorf("append: %w", errAccountClosed)
	}
	// Bodies are on disk, durably, before the transaction that references
	// them commits.
	inlineMax := a.s.inlineMax()
	blobs, err := a.u.writeBlobs(bodies, inlineMax)
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	err = a.write(ctx, "append", func(w *wtx) error {
		m, err := selectableByName(ctx, w.tx, n)
		if err != nil {
			return err
		}
		if uint64(m.uidNext)+uint64(len(msgs)) > math.MaxUint32 {
			return fmt.Errorf("mailbox %q: UIDs exhausted", m.name)
		}
		res = store.AppendResult{MailboxID: m.id, UIDValidity: m.uidValidity}
		if len(msgs) == 0 {
			return nil
		}
		if err := w.checkQuota(int64(len(msgs)), totalSize(msgs)); err != nil {
			return err
		}
		modseq := m.highest + 1
		od := w.delta(&m)
		saved := time.Unix(now.Unix(), 0).UTC()
		var allKws []string
		for i, p := range preps {
			kws, err := w.canonKeywords(p.kws)
			if err != nil {
				return err
			}
			allKws = append(allKws, kws...)
			var sent, sentTZ sql.NullInt64
			var sentDate time.Time
			if !p.info.SentDate.IsZero() {
				s, tz := backend.SplitTime(p.info.SentDate)
				sent, sentTZ = sql.NullInt64{Int64: s, Valid: true}, sql.NullInt64{Int64: tz, Valid: true}
				sentDate = backend.JoinTime(s, tz)
			}
			id := randomHex(8)
			size := int64(len(msgs[i].Body))
			threadID, err := w.threadFor(p.info, "T"+id)
			if err != nil {
				return err
			}
			r, err := w.tx.ExecContext(ctx, `INSERT INTO contents(blob, size, email_id, thread_id, sent_date, sent_tz, envelope, body, bodystructure, parts, header, preview)
				VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, blobs[i], size, "M"+id, threadID, sent, sentTZ,
				p.info.Envelope, p.info.Body, p.info.BodyStructure, p.info.Parts, p.header, p.preview)
			if err != nil {
				return fmt.Errorf("insert content: %w", err)
			}
			cid, err := r.LastInsertId()
			if err != nil {
				return err
			}
			if len(msgs[i].Body) <= inlineMax {
				if err := w.insertInlineBody(cid, msgs[i].Body, p.header); err != nil {
					return err
				}
			}
			// Counted up by the messages insert trigger.
			if _, err := w.tx.ExecContext(ctx, `INSERT INTO content_refs(content_id, refs) VALUES(?, 0)`, cid); err != nil {
				return fmt.Errorf("insert content: %w", err)
			}
			if err := w.saveThreading(cid, p.info); err != nil {
				return err
			}
			// Indexed for SEARCH in the background (fts.go); until then
			// one-field searches read its field lines here.
			if _, err := w.tx.ExecContext(ctx, `INSERT INTO fts_pending(content_id, lines) VALUES(?, ?)`, cid, p.lines); err != nil {
				return fmt.Errorf("queue content for indexing: %w", err)
			}
			uid := m.uidNext + uint32(i)
			isec, itz := backend.SplitTime(p.idate)
			kwList := backend.FormatKeywords(kws)
			if _, err := w.tx.ExecContext(ctx, insertMsg, m.id, uid, modseq, p.sys, kwList, cid, size, isec, itz, now.Unix()); err != nil {
				return fmt.Errorf("insert message: %w", err)
			}
			od.D.Rows = append(od.D.Rows, store.IndexRow{UID: uid, ModSeq: modseq, Flags: backend.FlagList(p.sys, kwList), Size: size,
				InternalDate: backend.JoinTime(isec, itz), SaveDate: saved, SentDate: sentDate, EmailID: "M" + id, ThreadID: threadID})
			res.UIDs = append(res.UIDs, uid)
		}
		grew, err := w.addMailboxKeywords(m.id, allKws)
		if err != nil {
			return err
		}
		od.Unusable = od.Unusable || grew
		if err := w.logUIDs(m.id, modseq, m.uidNext); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(ctx, setUIDNextModSeq, m.uidNext+uint32(len(msgs)), modseq, m.id); err != nil {
			return err
		}
		m.uidNext += uint32(len(msgs))
		m.highest = modseq
		if msgs[0].ClaimRecent && m.uidNext-1 > m.recentMark {
			if _, err := w.tx.ExecContext(ctx, `UPDATE mailboxes SET recent_mark = ? WHERE id = ?`, m.uidNext-1, m.id); err != nil {
				return err
			}
			res.RecentFrom = m.recentMark + 1
			m.recentMark = m.uidNext - 1
		}
		od.D.Head = m.head()
		w.changed[m.id] = modseq
		return nil
	})
	if err != nil {
		if a.bodiesUnreferenced(ctx, err, blobs) {
			a.u.removeBlobs(blobs)
		} else {
			a.s.log.Warn("append: commit failed with an unknown outcome; keeping its body files (tern check collects them if unused)",
				"user", a.u.name, "err", err)
		}
		return store.AppendResult{}, err
	}
	if len(msgs) > 0 {
		a.s.lastMailWrite.Store(time.Now().UnixNano())
		a.s.indexer.kick(a.u.id, a.u.name, len(msgs))
	}
	return res, nil
}

// bodiesUnreferenced reports whether the failed write of an Append
// (error err) certainly did not commit the rows that reference blobs, so
// the files may go. Any error but a failed COMMIT means a rollback. After
// a failed COMMIT, the rows must be absent from a new read, and the
// failure must not be one that crash recovery could still turn into a
// commit. When in doubt the files stay: an unreferenced file is harmless
// (tern check --repair removes it), a row without its file is a lost
// message.
func (a *account) bodiesUnreferenced(ctx context.Context, err error, blobs []string) bool {
	var ce *commitError
	switch {
	case !errors.As(err, &ce) || len(blobs) == 0:
		return true
	case commitMayReplay(ce.err):
		return false
	}
	b, jerr := json.Marshal(blobs)
	if jerr != nil {
		return false
	}
	var n int64
	ctx = context.WithoutCancel(ctx)
	rerr := a.read(ctx, "append: look for a failed commit", func(tx *sqlTx) error {
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM contents WHERE blob IN (SELECT value FROM json_each(?))`, string(b)).Scan(&n)
	})
	return rerr == nil && n == 0
}

func (a *account) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64, hasUnchangedSince bool) (store.StoreResult, error) {
	var res store.StoreResult
	opSys, opKws, err := backend.SplitFlags(flags)
	if err != nil {
		return res, fmt.Errorf("store flags: %w", err)
	}
	if op != store.FlagsReplace && op != store.FlagsAdd && op != store.FlagsRemove && op != store.FlagsReplaceKeepSeen {
		return res, fmt.Errorf("store flags: unknown operation %d", op)
	}
	rs := toRanges(uids)
	err = a.lazyWrite(ctx, "store flags", func(w *wtx) error {
		res = store.StoreResult{}
		m, err := selectableByID(ctx, w.tx, mailboxID)
		if err != nil {
			return err
		}
		kws := opKws
		if op != store.FlagsRemove {
			if kws, err = w.canonKeywords(opKws); err != nil {
				return err
			}
		}
		rows, err := w.flagRows(m.id, rs)
		if err != nil || len(rows) == 0 {
			return err
		}
		modseq := m.highest + 1
		// Compute every message's new flags here, then write the changed
		// ones with as few UPDATEs as the changes allow (see setFlags).
		var changes []flagRow
		res.Updated = make([]store.MessageMeta, 0, len(rows))
		fl := backend.FlagInterner{}
		for i := range rows {
			r := &rows[i]
			if hasUnchangedSince && r.modseq > unchangedSince {
				res.Modified = append(res.Modified, r.uid)
				continue
			}
			ns, nk := backend.ApplyFlags(op, r.sys, r.kws, opSys, kws)
			ms := r.modseq
			if ns != r.sys || nk != r.kws {
				changes = append(changes, flagRow{uid: r.uid, sys: ns, kws: nk})
				ms = modseq
				// Keep the old state in rows[i] for setFlags.
			}
			res.Updated = append(res.Updated, store.MessageMeta{UID: r.uid, ModSeq: ms, Flags: fl.Flags(ns, nk)})
		}
		if len(changes) > 0 {
			if err := w.setFlags(m.id, modseq, op, opSys, rows, changes); err != nil {
				return err
			}
			if _, err := w.tx.ExecContext(ctx, setModSeq, modseq, m.id); err != nil {
				return err
			}
			w.changed[m.id] = modseq
			res.ModSeq = modseq
		}
		if op != store.FlagsRemove && len(kws) > 0 && len(res.Updated) > 0 {
			grew, err := w.addMailboxKeywords(m.id, kws)
			if err != nil {
				return err
			}
			if grew {
				if res.Keywords, err = mailboxKeywords(ctx, w.tx, m.id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return res, err
}

// setFlags writes changes (new flags of messages, ascending by UID; old
// flags in rows, also ascending) with modseq. When only system flags are
// added or removed and keywords stay as they are, that is one UPDATE for
// all; otherwise one UPDATE per distinct new flag state (few in practice:
// +FLAGS $Label on a thousand messages mostly gives one or two).
func (w *wtx) setFlags(mailboxID int64, modseq uint64, op store.FlagOp, opSys int64, rows, changes []flagRow) error {
	sysOnly := op == store.FlagsAdd || op == store.FlagsRemove
	if sysOnly {
		j := 0
		for _, c := range changes {
			for rows[j].uid != c.uid {
				j++
			}
			if rows[j].kws != c.kws {
				sysOnly = false
				break
			}
		}
	}
	exec := func(set string, uids []uint32, args ...any) error {
		cond, uargs := uidIn("uid", toRanges(uids), len(args)+2)
		res, err := w.tx.ExecContext(w.ctx, `UPDATE messages SET `+set+` WHERE mailbox_id = ?1 AND `+cond,
			append(append([]any{mailboxID}, args...), uargs...)...)
		if err != nil {
			return fmt.Errorf("update flags: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(uids)) {
			return fmt.Errorf("update flags: updated %d of %d messages (%v)", n, len(uids), err)
		}
		return nil
	}
	if sysOnly {
		// (sysflags | add) & ~remove is what backend.ApplyFlags computed for each.
		var add, remove int64
		if op == store.FlagsAdd {
			add = opSys
		} else {
			remove = opSys
		}
		uids := make([]uint32, len(changes))
		for i, c := range changes {
			uids[i] = c.uid
		}
		return exec(`modseq = ?2, sysflags = (sysflags | ?3) & ~?4`, uids, modseq, add, remove)
	}
	type state struct {
		sys int64
		kws string
	}
	groups := map[state][]uint32{}
	var order []state
	for _, c := range changes {
		s := state{c.sys, c.kws}
		if _, ok := groups[s]; !ok {
			order = append(order, s)
		}
		groups[s] = append(groups[s], c.uid)
	}
	for _, s := range order {
		if err := exec(`modseq = ?2, sysflags = ?3, keywords = ?4`, groups[s], modseq, s.sys, s.kws); err != nil {
			return err
		}
	}
	return nil
}

func (a *account) Expunge(ctx context.Context, mailboxID int64, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	var out []uint32
	rs := toRanges(uids)
	err := a.lazyWrite(ctx, "expunge", func(w *wtx) error {
		out = nil
		m, err := selectableByID(ctx, w.tx, mailboxID)
		if err != nil {
			return err
		}
		rows, err := w.msgRows(m.id, rs, uids == nil, onlyDeleted)
		if err != nil || len(rows) == 0 {
			return err
		}
		if _, err := w.expungeRows(&m, rows); err != nil {
			return err
		}
		out = make([]uint32, len(rows))
		for i, r := range rows {
			out[i] = r.uid
		}
		return nil
	})
	return out, err
}

func (a *account) Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	return a.copyMove(ctx, srcMailboxID, uids, dest, false)
}

func (a *account) Move(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	return a.copyMove(ctx, srcMailboxID, uids, dest, true)
}

func (a *account) copyMove(ctx context.Context, srcID int64, uids []uint32, dest string, move bool) (store.CopyResult, error) {
	var res store.CopyResult
	dn, err := backend.LookupName(dest)
	if err != nil {
		return res, err
	}
	what := "copy"
	if move {
		what = "move"
	}
	rs := toRanges(uids)
	// Durable even under FsyncOptimized: the new UIDs go to the client
	// (COPYUID), and a copy that a power failure undid would let later
	// mail take them again, which a client that cached the copies would
	// show as those messages.
	err = a.write(ctx, what, func(w *wtx) error {
		res = store.CopyResult{}
		src, err := selectableByID(ctx, w.tx, srcID)
		if err != nil {
			return err
		}
		d, err := selectableByName(ctx, w.tx, dn)
		if err != nil {
			return err
		}
		res.DestMailboxID, res.DestUIDValidity = d.id, d.uidValidity
		res.SrcModSeq = src.highest
		rows, err := w.msgRows(src.id, rs, false, false)
		if err != nil || len(rows) == 0 {
			return err
		}
		if !move { // a MOVE within one account never grows usage
			if err := w.checkQuota(int64(len(rows)), rowsSize(rows)); err != nil {
				return err
			}
		}
		// Both are the transaction's current view of their mailbox; one
		// mailbox if source and destination are the same.
		sp, dp := &src, &d
		if d.id == src.id {
			dp = sp
		}
		if res.DestUIDs, err = w.insertCopies(dp, rows, false); err != nil {
			return err
		}
		res.SrcUIDs = make([]uint32, len(rows))
		for i, r := range rows {
			res.SrcUIDs[i] = r.uid
		}
		if move {
			res.SrcModSeq, err = w.expungeRows(sp, rows)
		}
		return err
	})
	return res, err
}

func scanMeta(rows *sqldb.Rows) ([]store.MessageMeta, error) {
	defer rows.Close()
	var out []store.MessageMeta
	fl := backend.FlagInterner{}
	for rows.Next() {
		var mm store.MessageMeta
		var sys int64
		var kws string
		if err := rows.Scan(&mm.UID, &mm.ModSeq, &sys, &kws); err != nil {
			return nil, err
		}
		mm.Flags = fl.Flags(sys, kws)
		out = append(out, mm)
	}
	return out, rows.Err()
}

func (a *account) Changes(ctx context.Context, mailboxID int64, sinceModSeq uint64, sinceUID uint32) (store.ChangeSet, error) {
	var cs store.ChangeSet
	err := a.read(ctx, "changes", func(tx *sqlTx) error {
		m, err := selectableByID(ctx, tx, mailboxID)
		if err != nil {
			return err
		}
		cs.HighestModSeq, cs.UIDNext = m.highest, m.uidNext
		rows, err := tx.QueryContext(ctx, `SELECT uid, modseq, sysflags, keywords FROM messages
			WHERE mailbox_id = ? AND uid > ? ORDER BY uid`, m.id, sinceUID)
		if err != nil {
			return err
		}
		if cs.New, err = scanMeta(rows); err != nil {
			return err
		}
		// By the modseq index: O(changes), not O(mailbox) as the primary
		// key range on uid would be.
		rows, err = tx.QueryContext(ctx, `SELECT uid, modseq, sysflags, keywords FROM messages INDEXED BY messages_modseq
			WHERE mailbox_id = ? AND modseq > ? AND uid <= ? ORDER BY uid`, m.id, sinceModSeq, sinceUID)
		if err != nil {
			return err
		}
		if cs.Changed, err = scanMeta(rows); err != nil {
			return err
		}
		if cs.Expunged, err = expungedSince(ctx, tx, m.id, sinceModSeq, math.MaxUint32); err != nil {
			return err
		}
		cs.Keywords, err = mailboxKeywords(ctx, tx, m.id)
		return err
	})
	return cs, err
}

func (a *account) Vanished(ctx context.Context, mailboxID int64, sinceModSeq uint64) ([]uint32, error) {
	var uids []uint32
	err := a.read(ctx, "vanished", func(tx *sqlTx) error {
		if _, err := mboxByID(ctx, tx, mailboxID); err != nil {
			return err
		}
		// UIDs from the first one allocated after sinceModSeq on did not
		// exist then: a client synchronised to sinceModSeq never saw them.
		bound := int64(math.MaxUint32)
		err := tx.QueryRowContext(ctx, `SELECT uid_first FROM uid_log WHERE mailbox_id = ? AND modseq > ?
			ORDER BY modseq LIMIT 1`, mailboxID, sinceModSeq).Scan(&bound)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		uids, err = expungedSince(ctx, tx, mailboxID, sinceModSeq, uint32(bound-1))
		return err
	})
	return uids, err
}

// expungedSince expands the expunge ranges with a modseq above since into
// ascending UIDs no greater than maxUID.
func expungedSince(ctx context.Context, tx querier, mailboxID int64, since uint64, maxUID uint32) ([]uint32, error) {
	rows, err := tx.QueryContext(ctx, `SELECT uid_lo, uid_hi FROM expunged INDEXED BY expunged_modseq WHERE mailbox_id = ? AND modseq > ? AND uid_lo <= ?
		ORDER BY uid_lo`, mailboxID, since, maxUID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var uids []uint32
	for rows.Next() {
		var lo, hi uint32
		if err := rows.Scan(&lo, &hi); err != nil {
			return nil, err
		}
		for u := lo; u <= min(hi, maxUID); u++ {
			uids = append(uids, u)
			if u == math.MaxUint32 {
				break
			}
		}
	}
	return uids, rows.Err()
}

// logUIDs records the first UID allocated at modseq (see uid_log).
func (w *wtx) logUIDs(mailboxID int64, modseq uint64, first uint32) error {
	if _, err := w.tx.ExecContext(w.ctx, `INSERT OR IGNORE INTO uid_log(mailbox_id, modseq, uid_first) VALUES(?, ?, ?)`,
		mailboxID, modseq, first); err != nil {
		return fmt.Errorf("log uids: %w", err)
	}
	return nil
}

// Values of the SQL expression inlineKind: how a content's body is kept.
// bodyHeaderless and bodyCompressed are bits of bodies.split.
const (
	bodyInFile     = -1 // no bodies row: a file under blobs/
	bodyWhole      = 0  // bodies.data is the whole message
	bodyHeaderless = 1  // bodies.data follows contents.header (split)
	bodyCompressed = 2  // bodies.data is S2-compressed (schema version 16)
)

// inlineKind selects, for a query joining contents c and bodies b, how
// the body is kept (bodyInFile, or bodies.split's bits).
const inlineKind = `COALESCE(b.split, -1)`

// inlineHeader selects, for a query joining contents c and bodies b, the
// stored header when bodies.data follows it, else NULL.
const inlineHeader = `CASE WHEN b.split & 1 THEN c.header END`

// wholeInline returns the whole message of a body kept in mail.db (data
// from bodies, header from contents; kind from inlineKind), never nil;
// nil for a body kept in a file.
func wholeInline(data, header []byte, kind int, size int64) ([]byte, error) {
	if kind == bodyInFile {
		return nil, nil
	}
	want := size
	if kind&bodyHeaderless != 0 {
		want -= int64(len(header))
	}
	data, err := unpackInline(data, kind, want)
	if err != nil {
		return nil, err
	}
	if kind&bodyHeaderless != 0 {
		data = append(header[:len(header):len(header)], data...)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// packInline returns what the bodies table keeps of data and the
// bodyCompressed bit: S2 compression where it saves at least an eighth
// (text compresses to about 40 %; an attachment already compressed
// would not, and is kept as it is). S2 decodes at about 2 GB/s, so
// reading a body back costs a few microseconds.
func packInline(data []byte) ([]byte, int) {
	if len(data) < minCompressed {
		return data, 0
	}
	z := s2.Encode(nil, data)
	if len(z) > len(data)-len(data)/8 {
		return data, 0
	}
	return z, bodyCompressed
}

// minCompressed is the smallest body part packInline tries to compress.
const minCompressed = 512

// unpackInline returns the bytes a bodies row of kind holds, want bytes
// when compressed (decodeBody).
func unpackInline(data []byte, kind int, want int64) ([]byte, error) {
	if kind&bodyCompressed == 0 {
		return data, nil
	}
	return decodeBody(nil, data, want)
}

// decodeBody decompresses a bodies row's data of want bytes, into dst's
// array when it is large enough: a row whose length header says otherwise
// is damaged, and is refused before anything is allocated for it.
func decodeBody(dst, data []byte, want int64) ([]byte, error) {
	if n, err := s2.DecodedLen(data); err != nil || int64(n) != want {
		return nil, fmt.Errorf("decompress body: damaged (%d bytes, want %d; %v)", n, want, err)
	}
	out, err := s2.Decode(dst[:cap(dst)], data)
	if err != nil {
		return nil, fmt.Errorf("decompress body: %w", err)
	}
	return out, nil
}

// insertInlineBody keeps a small body in the bodies table; when the
// message starts with its stored header (contents.header), only the rest
// is kept (split), compressed where that pays (packInline).
func (w *wtx) insertInlineBody(contentID int64, raw, header []byte) error {
	data, split := raw, 0
	if len(header) > 0 && bytes.HasPrefix(raw, header) {
		data, split = raw[len(header):], bodyHeaderless
	}
	data, compressed := packInline(data)
	if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO bodies(content_id, data, split) VALUES(?, ?, ?)`, contentID, data, split|compressed); err != nil {
		return fmt.Errorf("insert body: %w", err)
	}
	return nil
}

const wantContent = store.WantDates | store.WantEnvelope | store.WantBody | store.WantBodyStructure | store.WantIDs | store.WantHeader | store.WantPreview

// fetchBatch bounds the messages one query of Fetch reads before fn runs.
const fetchBatch = 256

// Fetch reads the messages in batches of at most fetchBatch UIDs: each
// batch is read into memory and its rows closed (ending the query's read
// snapshot) before fn is called for its messages. fn typically writes to a
// client's socket; a client that reads slowly must not keep a read
// transaction open, which would stop SQLite from checkpointing the WAL
// past it (and let the WAL grow) for as long as the client dawdles. Each
// batch is a consistent snapshot; a message expunged between two batches
// is skipped like any missing UID.
func (a *account) Fetch(ctx context.Context, mailboxID int64, uids []uint32, want store.Want, fn func(*store.Message) error) error {
	if a.closed.Load() {
		return fmt.Errorf("fetch: %w", errAccountClosed)
	}
	rs := toRanges(uids)
	if len(rs) == 0 {
		return a.checkSelectable(ctx, mailboxID)
	}
	p := a.newFetchPlan(mailboxID, want)
	if rangesLen(rs) <= fetchBatch {
		msgs, err := p.read(ctx, rs)
		if err != nil {
			return err
		}
		return deliverFetched(msgs, fn)
	}
	return p.pipeline(ctx, rs, fn)
}

// fetchPlan is one Fetch's query, read batch by batch.
type fetchPlan struct {
	a         *account
	mailboxID int64
	want      store.Want
	cols      string // SELECT ... (without FROM)
	join      string
	content   bool // the query joins contents
	// q runs the batch queries: the user's connections, or for a Fetch
	// of several batches the scan connections (userDB.scan).
	q querier
	// checked says the mailbox was looked up: a mailbox that does not
	// exist (or cannot hold messages) has no rows, so it is looked up
	// only when a batch finds fewer messages than it asked for, not on
	// every FETCH.
	checked bool
}

func (a *account) newFetchPlan(mailboxID int64, want store.Want) *fetchPlan {
	col := func(w store.Want, c string) string {
		if want&w != 0 {
			return c
		}
		return "NULL"
	}
	p := &fetchPlan{a: a, mailboxID: mailboxID, want: want, q: a.u.db,
		cols:    `SELECT m.uid, m.modseq, m.sysflags, m.keywords, m.internal_date, m.internal_tz, m.save_date, m.size`,
		content: want&(wantContent|store.WantThreading) != 0}
	if p.content {
		p.cols += `, c.sent_date, c.sent_tz, ` + col(store.WantEnvelope, "c.envelope") + `, ` + col(store.WantBody, "c.body") +
			`, ` + col(store.WantBodyStructure, "c.bodystructure") +
			`, c.email_id, c.thread_id, ` + col(store.WantHeader, "c.header") + `, ` + col(store.WantPreview, "c.preview")
		p.join = ` JOIN contents c ON c.id = m.content_id`
		if want&store.WantThreading != 0 {
			p.cols += threadingCols
			p.join += threadingJoin
		}
	}
	return p
}

// read returns the messages of batch (at most fetchBatch UIDs).
func (p *fetchPlan) read(ctx context.Context, batch []uidRange) ([]*store.Message, error) {
	from, cond, rargs := uidMatch(batch)
	q := p.cols + ` FROM ` + from + `messages m` + p.join + ` WHERE m.mailbox_id = ?1 AND ` + cond + ` ORDER BY m.uid`
	msgs, err := p.a.fetchRows(ctx, p.q, q, append([]any{p.mailboxID}, rargs...), p.want, p.content,
		make([]*store.Message, 0, min(fetchBatch, rangesLen(batch))))
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	if !p.checked && len(msgs) < rangesLen(batch) {
		p.checked = true
		if err := p.a.checkSelectable(ctx, p.mailboxID); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// fetchedBatch is what pipeline's reader hands on: a batch's messages or
// the error that ended the reading.
type fetchedBatch struct {
	msgs []*store.Message
	err  error
}

// pipeline reads rs batch by batch on its own goroutine while fn handles
// the batch before, so a large FETCH uses a second core: SQLite's rows
// and the writing of the response overlap (sync-headers, one FETCH of
// 10,000 messages, spent 60 % of its time in the reading and 20 % in the
// writing). At most three batches are in memory: the one fn handles, one
// waiting and one being read. Each batch is its own query, as before.
func (p *fetchPlan) pipeline(ctx context.Context, rs []uidRange, fn func(*store.Message) error) error {
	p.q = p.a.u.scan
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan fetchedBatch, 1)
	go func() {
		defer close(ch)
		for len(rs) > 0 {
			var batch []uidRange
			batch, rs = nextFetchBatch(rs, fetchBatch)
			msgs, err := p.read(ctx, batch)
			select {
			case ch <- fetchedBatch{msgs, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		for range ch { // the reader has stopped when ch is closed
		}
	}()
	for b := range ch {
		if b.err != nil {
			return b.err
		}
		if err := deliverFetched(b.msgs, fn); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
	}
	return nil
}

// deliverFetched calls fn with each message in order.
func deliverFetched(msgs []*store.Message, fn func(*store.Message) error) error {
	for _, m := range msgs {
		if err := fn(m); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
	}
	return nil
}

// fetchRows runs one query of Fetch and returns its messages, appended to
// out, with the rows closed.
func (a *account) fetchRows(ctx context.Context, db querier, q string, args []any, want store.Want, content bool, out []*store.Message) ([]*store.Message, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	var (
		uid                    uint32
		modseq                 uint64
		sys, idate, itz, sdate int64
		size                   int64
		kws                    string
		sent, sentTZ           sql.NullInt64
		env, body, bs          []byte
		header                 []byte
		emailID, threadID      string
		preview                sql.NullString
	)
	dest := []any{&uid, &modseq, &sys, &kws, &idate, &itz, &sdate, &size}
	if content {
		dest = append(dest, &sent, &sentTZ, &env, &body, &bs, &emailID, &threadID, &header, &preview)
	}
	var thr threadingRow
	if want&store.WantThreading != 0 {
		dest = append(dest, thr.dest()...)
	}
	fl := backend.FlagInterner{}
	for rows.Next() {
		env, body, bs, header = nil, nil, nil, nil
		if err := rows.Scan(dest...); err != nil {
			return out, err
		}
		msg := &store.Message{UID: uid, ModSeq: modseq}
		if want&store.WantSize != 0 {
			msg.Size = size
		}
		if want&store.WantFlags != 0 {
			msg.Flags = fl.Flags(sys, kws)
		}
		if want&store.WantDates != 0 {
			msg.InternalDate = backend.JoinTime(idate, itz)
			msg.SaveDate = time.Unix(sdate, 0).UTC()
			if sent.Valid {
				msg.SentDate = backend.JoinTime(sent.Int64, sentTZ.Int64)
			}
		}
		// Scan copies into []byte destinations: safe to keep after Next.
		msg.Envelope, msg.Body, msg.BodyStructure, msg.Header = env, body, bs, header
		if want&store.WantIDs != 0 {
			msg.EmailID, msg.ThreadID = emailID, threadID
		}
		if want&store.WantPreview != 0 && preview.Valid {
			p := preview.String
			msg.Preview = &p
		}
		if want&store.WantThreading != 0 {
			thr.fill(msg)
		}
		out = append(out, msg)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	return out, rows.Close()
}

// nextFetchBatch splits off the first ranges of rs (ascending, disjoint)
// covering at most n UIDs, splitting a range if needed (rs is modified),
// and returns them and the rest.
func nextFetchBatch(rs []uidRange, n int) (batch, rest []uidRange) {
	left := uint64(n)
	for i, r := range rs {
		size := uint64(r.hi) - uint64(r.lo) + 1
		if size < left {
			left -= size
			continue
		}
		if size == left {
			return rs[:i+1], rs[i+1:]
		}
		// Split r: its first left UIDs go in this batch (a new array, as
		// rs[i] is changed in place to the rest of r).
		cut := uint32(uint64(r.lo) + left - 1)
		batch = append(rs[:i:i], uidRange{r.lo, cut})
		rs[i].lo = cut + 1
		return batch, rs[i:]
	}
	return rs, nil
}

func (a *account) OpenBody(ctx context.Context, mailboxID int64, uid uint32) (store.Body, error) {
	if a.closed.Load() {
		return nil, fmt.Errorf("open body: %w", errAccountClosed)
	}
	var blob string
	var size int64
	var parts []byte
	var header []byte // a copy, out of SQLite's memory
	var kind int
	data := newBodyBuffer() // the inline body's bytes, into a reused array
	err := a.u.db.QueryRowContext(ctx, `SELECT c.blob, c.size, c.parts, b.data, `+inlineKind+`, `+inlineHeader+`
		FROM messages m JOIN contents c ON c.id = m.content_id
		LEFT JOIN bodies b ON b.content_id = c.id
		WHERE m.mailbox_id = ? AND m.uid = ?`, mailboxID, uid).Scan(&blob, &size, &parts, &data.Buffer, &kind, &header)
	if errors.Is(err, sql.ErrNoRows) {
		data.release()
		return nil, fmt.Errorf("open body of UID %d: %w", uid, errNoSuchMessage)
	}
	if err != nil {
		data.release()
		return nil, fmt.Errorf("open body of UID %d: %w", uid, err)
	}
	if kind != bodyInFile {
		rest, err := data.unpack(kind, size-int64(len(header)))
		if err != nil {
			return nil, fmt.Errorf("open body of UID %d: %w", uid, err)
		}
		return &splitBody{head: header, rest: rest.B, parts: parts, buf: rest}, nil
	}
	data.release()
	if testBeforeOpenBlob != nil {
		testBeforeOpenBlob()
	}
	body, err := a.u.openBlobFile(blob, size, parts)
	if errors.Is(err, os.ErrNotExist) {
		// An expunge may have committed (and its body file been removed)
		// between the query and the open: then the message is gone, which
		// is not damage. Or tern check --compact packed the file under a
		// new name: then the message is there, in the new file.
		var now string
		qerr := a.u.db.QueryRowContext(ctx, `SELECT c.blob FROM messages m JOIN contents c ON c.id = m.content_id
			WHERE m.mailbox_id = ? AND m.uid = ?`, mailboxID, uid).Scan(&now)
		switch {
		case errors.Is(qerr, sql.ErrNoRows):
			return nil, fmt.Errorf("open body of UID %d: %w", uid, errNoSuchMessage)
		case qerr == nil && now != blob:
			body, err = a.u.openBlobFile(now, size, parts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open body of UID %d: %w", uid, err)
	}
	return body, nil
}

// testBeforeOpenBlob, if set (tests only), runs in OpenBody between the
// lookup of a body file's name and its open.
var testBeforeOpenBlob func()

// errNoSuchMessage is returned by OpenBody for a UID not in the mailbox.
var errNoSuchMessage = store.ErrNoSuchMessage

// checkSelectable returns Fetch's error for a mailbox that does not exist
// or cannot hold messages.
func (a *account) checkSelectable(ctx context.Context, mailboxID int64) error {
	if _, err := selectableByID(ctx, a.u.db, mailboxID); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	return nil
}

// rangesLen is the number of UIDs rs covers.
func rangesLen(rs []uidRange) int {
	n := 0
	for _, r := range rs {
		n += int(r.hi-r.lo) + 1
	}
	return n
}
