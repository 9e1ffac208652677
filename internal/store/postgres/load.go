package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// The Load methods are the target side of tern store copy
// (internal/storecopy): they write rows with the identities the source
// store gave them (UIDVALIDITY, UIDs, MODSEQs, email and thread ids)
// instead of allocating new ones, so that clients synchronised against
// the source need no full resync. Each one is safe to run again after an
// interrupted copy: users and mailboxes are created once, messages at or
// below a mailbox's highest copied UID are skipped, and the history
// (counters, tombstones, UID log) is written idempotently at the end.
// They are meant for a database no node is serving yet.

// ErrLoadConflict: the target already holds a user or mailbox of that
// name that did not come from this source (another password hash,
// another UIDVALIDITY).
var ErrLoadConflict = errors.New("exists in the target and did not come from this source")

// userID looks a user's id up.
func (s *Store) userID(ctx context.Context, name string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE name = $1`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("user %q: %w", name, store.ErrNoSuchUser)
	}
	if err != nil {
		return 0, fmt.Errorf("user %q: %w", name, err)
	}
	return id, nil
}

// LoadUser creates user name with its password hash (no mailboxes: they
// come from the source). A user that exists already is left as it is;
// with the same hash it is taken to be from an earlier run of the copy
// (hashes are salted: another user of the same name has another one),
// with another hash it is ErrLoadConflict.
func (s *Store) LoadUser(ctx context.Context, name, passwordHash string) error {
	if err := backend.ValidUserName(name); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO users(name, password_hash) VALUES($1, $2)
		ON CONFLICT (name) DO NOTHING`, name, passwordHash); err != nil {
		return fmt.Errorf("load user %q: %w", name, err)
	}
	var have string
	if err := s.pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE name = $1`, name).Scan(&have); err != nil {
		return fmt.Errorf("load user %q: %w", name, err)
	}
	if have != passwordHash {
		return fmt.Errorf("user %q has another password hash in the target: %w", name, ErrLoadConflict)
	}
	return nil
}

// LoadMailbox creates the user's mailbox as info describes it (name,
// UIDVALIDITY, special use, \Noselect), or finds the one an earlier run
// created, and returns its id and the highest UID already copied into
// it (0: none). A mailbox of that name with another UIDVALIDITY is
// ErrLoadConflict.
func (s *Store) LoadMailbox(ctx context.Context, user string, info store.MailboxInfo) (int64, uint32, error) {
	uid, err := s.userID(ctx, user)
	if err != nil {
		return 0, 0, err
	}
	var (
		id       int64
		validity int64
		last     int64
	)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO mailboxes(user_id, name, uidvalidity, special_use, noselect) VALUES($1, $2, $3, $4, $5)
			ON CONFLICT (user_id, name) DO NOTHING`, uid, info.Name, int64(info.UIDValidity), info.SpecialUse, info.NoSelect); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT id, uidvalidity FROM mailboxes WHERE user_id = $1 AND name = $2`, uid, info.Name).Scan(&id, &validity); err != nil {
			return err
		}
		if validity != int64(info.UIDValidity) {
			return fmt.Errorf("%q has UIDVALIDITY %d, the source %d: %w", info.Name, validity, info.UIDValidity, ErrLoadConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE mailboxes SET special_use = $2, noselect = $3 WHERE id = $1`, id, info.SpecialUse, info.NoSelect); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT COALESCE(MAX(uid), 0) FROM messages WHERE mailbox_id = $1`, id).Scan(&last)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("load mailbox %q of %q: %w", info.Name, user, err)
	}
	return id, uint32(last), nil
}

// LoadMessages writes msgs (ascending UIDs) into the user's mailbox in
// one write transaction of the user (the same lock, group commit and
// body handling as Append: bodies go to the blob store first when there
// is one, and are counted and verified in the transaction); contents and
// messages rows go by COPY. Messages at or below the mailbox's highest
// UID are skipped, so a batch that committed before a crash is never
// written twice. The mailbox's counters are left to LoadHistory.
func (s *Store) LoadMessages(ctx context.Context, user string, mailboxID int64, msgs []store.CopiedMessage) error {
	acct, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	a := acct.(*account)
	defer a.Close()
	var last int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(uid), 0) FROM messages WHERE mailbox_id = $1`, mailboxID).Scan(&last); err != nil {
		return fmt.Errorf("load messages of %q: %w", user, err)
	}
	for len(msgs) > 0 && int64(msgs[0].UID) <= last {
		msgs = msgs[1:]
	}
	if len(msgs) == 0 {
		return nil
	}
	lr, err := s.loadRows(user, a.id, mailboxID, msgs)
	if err != nil {
		return fmt.Errorf("load messages of %q: %w", user, err)
	}
	if err := s.putBlobs(ctx, lr.preps); err != nil {
		return fmt.Errorf("load messages of %q: %w", user, err)
	}
	return a.write(ctx, "load messages", func(w *wtx) error {
		// Under the user's lock: nothing may have come in meanwhile.
		var now int64
		if err := w.tx.QueryRow(w.ctx, `SELECT COALESCE(MAX(uid), 0) FROM messages WHERE mailbox_id = $1`, mailboxID).Scan(&now); err != nil {
			return err
		}
		if now >= int64(msgs[0].UID) {
			return fmt.Errorf("mailbox %d already has UID %d (is another copy running?)", mailboxID, now)
		}
		return lr.write(w)
	})
}

// loadRows is one LoadMessages batch, parsed and laid out as rows.
type loadRows struct {
	userID    int64
	preps     []prepared // the bodies, for the body store
	contents  [][]any    // without id: it is taken from the sequence in write
	messages  [][]any    // without content_id
	kwFolded  []string
	kwNames   []string
	threadMID []string
	threadTID []string
}

func (s *Store) loadRows(user string, userID, mailboxID int64, msgs []store.CopiedMessage) (*loadRows, error) {
	lr := &loadRows{userID: userID}
	for _, m := range msgs {
		sys, kws, err := backend.SplitFlags(m.Flags)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", m.UID, err)
		}
		for _, k := range kws {
			lr.kwFolded = append(lr.kwFolded, strings.ToLower(k))
			lr.kwNames = append(lr.kwNames, k)
		}
		info := backend.ParseMessage(s.log, user, m.Body)
		var sent, sentTZ *int64
		if !info.SentDate.IsZero() {
			sec, tz := backend.SplitTime(info.SentDate)
			sent, sentTZ = &sec, &tz
		}
		preview := textSafe(backend.Preview(m.Body, info))
		hash := bodyHash(m.Body)
		lr.preps = append(lr.preps, prepared{NewMessage: store.NewMessage{Body: m.Body}, hash: hash})
		lr.contents = append(lr.contents, []any{userID, hash, int64(len(m.Body)), m.EmailID, m.ThreadID, sent, sentTZ,
			info.Envelope, info.Body, info.BodyStructure, info.Parts, backend.HeaderBlock(m.Body, info),
			textSafe(info.MessageID), textSafe(backend.JoinIDs(info.InReplyTo)), textSafe(backend.JoinIDs(info.References)), &preview})
		isec, itz := backend.SplitTime(m.InternalDate)
		lr.messages = append(lr.messages, []any{mailboxID, int64(m.UID), int64(m.ModSeq), sys, backend.FormatKeywords(kws),
			int64(len(m.Body)), isec, itz, m.SaveDate.Unix()})
		for _, id := range textSafeAll(threadLookup(info)) {
			lr.threadMID = append(lr.threadMID, id)
			lr.threadTID = append(lr.threadTID, m.ThreadID)
		}
	}
	return lr, nil
}

var (
	loadContentCols = []string{"id", "user_id", "body_hash", "size", "email_id", "thread_id", "sent_date", "sent_tz",
		"envelope", "body", "bodystructure", "parts", "header", "message_id", "in_reply_to", "refs", "preview"}
	loadMessageCols = []string{"mailbox_id", "uid", "modseq", "sysflags", "keywords", "size", "internal_date", "internal_tz",
		"save_date", "content_id"}
)

// copyFromer is what COPY needs; the write transaction's connection
// (a *pgx.Conn) has it.
type copyFromer interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error)
}

// write stores the batch in the write transaction w: keywords and bodies
// (one pipelined batch; new bodies' objects verified), content ids from
// the sequence, then contents and messages by COPY, then the thread ids.
func (lr *loadRows) write(w *wtx) error {
	ctx := w.ctx
	cf, ok := w.tx.(copyFromer)
	if !ok {
		return errors.New("the write transaction's connection cannot COPY")
	}
	b := &pgx.Batch{}
	if len(lr.kwFolded) > 0 {
		b.Queue(`INSERT INTO keywords(user_id, folded, name)
			SELECT DISTINCT ON (folded) $1::bigint, folded, name FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(folded, name, ord)
			ORDER BY folded, ord ON CONFLICT DO NOTHING`, lr.userID, lr.kwFolded, lr.kwNames)
	}
	w.unverified, w.retired = w.unverified[:0], w.retired[:0]
	for i := range lr.preps {
		w.queueSaveBody(b, &lr.preps[i])
	}
	if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store bodies: %w", err)
	}
	if err := w.settleBlobs(); err != nil {
		return err
	}
	rows, err := w.tx.Query(ctx, `SELECT nextval(pg_get_serial_sequence('contents', 'id')) FROM generate_series(1, $1)`, len(lr.preps))
	if err != nil {
		return fmt.Errorf("allocate content ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("allocate content ids: %w", err)
	}
	contents := make([][]any, len(ids))
	messages := make([][]any, len(ids))
	for i, id := range ids { // fresh rows: a retried transaction builds them again
		contents[i] = append([]any{id}, lr.contents[i]...)
		messages[i] = append(lr.messages[i][:len(lr.messages[i]):len(lr.messages[i])], id)
	}
	if _, err := cf.CopyFrom(ctx, pgx.Identifier{"contents"}, loadContentCols, pgx.CopyFromRows(contents)); err != nil {
		return fmt.Errorf("copy contents: %w", err)
	}
	if _, err := cf.CopyFrom(ctx, pgx.Identifier{"messages"}, loadMessageCols, pgx.CopyFromRows(messages)); err != nil {
		return fmt.Errorf("copy messages: %w", err)
	}
	if len(lr.threadMID) > 0 {
		if _, err := w.tx.Exec(ctx, `INSERT INTO thread_ids(user_id, message_id, thread_id)
			SELECT $1, mid, tid FROM unnest($2::text[], $3::text[]) AS t(mid, tid) ON CONFLICT DO NOTHING`,
			lr.userID, lr.threadMID, lr.threadTID); err != nil {
			return fmt.Errorf("record thread ids: %w", err)
		}
	}
	return nil
}

// LoadHistory sets a copied mailbox's counters, \Recent mark, tombstones,
// UID log, other users' private \Seen (replaced by the source's, with
// their modseqs) and keyword list exactly as the source has them. Each
// keyword also gets the account's spelling row (the source's spelling,
// unless the account has one): the list is read through it, and a
// keyword no copied message carries has no row otherwise. The caller
// has made sure the target is not ahead of the source (storecopy's
// rerun check): the counters are written as they are.
func (s *Store) LoadHistory(ctx context.Context, mailboxID int64, h store.MailboxHistory, keywords []string) error {
	var lo, hi, ms, logMS, logUID []int64
	for _, e := range h.Expunged {
		lo, hi, ms = append(lo, int64(e.Lo)), append(hi, int64(e.Hi)), append(ms, int64(e.ModSeq))
	}
	for _, e := range h.UIDLog {
		logMS, logUID = append(logMS, int64(e.ModSeq)), append(logUID, int64(e.FirstUID))
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`UPDATE mailboxes SET uidnext = $2, highestmodseq = $3, recent_mark = $4 WHERE id = $1`,
			mailboxID, int64(h.UIDNext), int64(h.HighestModSeq), int64(h.RecentMark))
		b.Queue(`INSERT INTO expunged(mailbox_id, uid_lo, uid_hi, modseq)
			SELECT $1, lo, hi, ms FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS r(lo, hi, ms)
			ON CONFLICT (mailbox_id, uid_lo) DO UPDATE SET uid_hi = excluded.uid_hi, modseq = excluded.modseq`, mailboxID, lo, hi, ms)
		b.Queue(`INSERT INTO uid_log(mailbox_id, modseq, uid_first) SELECT $1, ms, uf FROM unnest($2::bigint[], $3::bigint[]) AS l(ms, uf)
			ON CONFLICT DO NOTHING`, mailboxID, logMS, logUID)
		queuePrivateSeen(b, mailboxID, h.PrivateSeen)
		if len(keywords) > 0 {
			b.Queue(`INSERT INTO keywords(user_id, folded, name)
				SELECT mb.user_id, k.folded, k.name FROM mailboxes mb, unnest($2::text[], $3::text[]) AS k(folded, name)
				WHERE mb.id = $1 ON CONFLICT DO NOTHING`, mailboxID, foldAll(keywords), keywords)
			b.Queue(addMailboxKeywordsSQL, mailboxID, foldAll(keywords))
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("load mailbox history: %w", err)
	}
	return nil
}

// queuePrivateSeen queues replacing the mailbox's private \Seen rows
// with states (the messages are all copied by now).
func queuePrivateSeen(b *pgx.Batch, mailboxID int64, states []store.PrivateSeenEntry) {
	viewers, uids, seen, modseqs := make([]string, len(states)), make([]int64, len(states)), make([]bool, len(states)), make([]int64, len(states))
	for i, e := range states {
		viewers[i], uids[i], seen[i], modseqs[i] = e.User, int64(e.UID), e.Seen, int64(e.ModSeq)
	}
	b.Queue(`DELETE FROM private_seen WHERE mailbox_id = $1`, mailboxID)
	b.Queue(`INSERT INTO private_seen(mailbox_id, uid, viewer, seen, modseq)
		SELECT $1, u, v, s, ms FROM unnest($2::bigint[], $3::text[], $4::boolean[], $5::bigint[]) AS p(u, v, s, ms)`,
		mailboxID, uids, viewers, seen, modseqs)
}

// FinishLoad sets the user's UIDVALIDITY counter to at least
// lastUIDValidity and recounts the quota usage from the copied messages.
func (s *Store) FinishLoad(ctx context.Context, user string, lastUIDValidity uint32) error {
	uid, err := s.userID(ctx, user)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE users SET
		uidvalidity = GREATEST(uidvalidity, $2, (SELECT COALESCE(MAX(uidvalidity), 0) FROM mailboxes WHERE user_id = $1)),
		used_messages = (SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = $1),
		used_storage = (SELECT COALESCE(SUM(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = $1)
		WHERE id = $1`, uid, int64(lastUIDValidity)); err != nil {
		return fmt.Errorf("finish loading %q: %w", user, err)
	}
	return nil
}
