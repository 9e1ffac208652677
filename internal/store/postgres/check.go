package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/search"
)

// consistencyCheck is one invariant of the database: a query that lists
// what breaks it (one line each), and the statement that repairs it (""
// when it can only be reported).
//
// A repair that recomputes a counter from other rows (usage, a body's
// references) first locks the rows it will set (lock, returning their
// keys as text) and then sets only those, passed as $1: its UPDATE must
// not wait for a row lock. Under READ COMMITTED an UPDATE that waits
// re-reads the row a concurrent write committed but keeps its
// statement's snapshot for the count, so that write would be in the row
// and not in the count: a body's references set too low, the body
// collected while a message uses it. With the rows locked first, the
// UPDATE's snapshot comes after every write that holds them, and the
// writes that come later change the counts relative to what it sets.
type consistencyCheck struct {
	find, lock, repair string
}

// settleUnused makes the bodies a repair left unused pending deletion,
// for the collector (bodies.go).
const settleUnused = `UPDATE bodies SET released = now() WHERE refs <= 0 AND released IS NULL`

// usageByUser is each user's message count and bytes, as a subquery.
const usageByUser = `(SELECT mb.user_id, count(*) n, sum(m.size) bytes FROM messages m
	JOIN mailboxes mb ON mb.id = m.mailbox_id GROUP BY mb.user_id)`

// usageWrong selects the users u whose quota usage differs from what
// their messages add up to (t).
const usageWrong = `FROM users u LEFT JOIN ` + usageByUser + ` t ON t.user_id = u.id
	WHERE (u.used_messages, u.used_storage) IS DISTINCT FROM (COALESCE(t.n, 0), COALESCE(t.bytes, 0))`

// refsWrong selects the bodies b whose reference count differs from the
// contents that use them (c).
const refsWrong = `FROM bodies b LEFT JOIN (SELECT body_hash, count(*) n FROM contents GROUP BY body_hash) c ON c.body_hash = b.hash
	WHERE b.refs IS DISTINCT FROM COALESCE(c.n, 0)`

// consistencyChecks are what Check verifies. The counters kept beside
// the data (usage, reference counts, UIDNEXT, HIGHESTMODSEQ) are
// recomputed or raised; a content whose body is gone cannot be repaired.
var consistencyChecks = []consistencyCheck{
	{
		find: `SELECT format('user %s: quota usage is %s messages, %s bytes; the messages add up to %s, %s', u.name,
				u.used_messages, u.used_storage, COALESCE(t.n, 0), COALESCE(t.bytes, 0)) ` + usageWrong + ` ORDER BY u.name`,
		lock: `SELECT u.id::text ` + usageWrong + ` ORDER BY u.id FOR NO KEY UPDATE OF u`,
		repair: `UPDATE users u SET used_messages = COALESCE(t.n, 0), used_storage = COALESCE(t.bytes, 0)
			FROM users u2 LEFT JOIN ` + usageByUser + ` t ON t.user_id = u2.id
			WHERE u.id = u2.id AND u.id = ANY($1::text[]::bigint[])`,
	},
	{
		find: `SELECT format('body %s: %s references counted, %s contents use it', encode(b.hash, 'hex'), b.refs, COALESCE(c.n, 0)) ` +
			refsWrong + ` ORDER BY b.hash`,
		lock: `SELECT encode(b.hash, 'hex') ` + refsWrong + ` ORDER BY b.hash FOR NO KEY UPDATE OF b`,
		repair: `UPDATE bodies b SET refs = (SELECT count(*) FROM contents c WHERE c.body_hash = b.hash),
				released = CASE WHEN (SELECT count(*) FROM contents c WHERE c.body_hash = b.hash) > 0 THEN NULL
					ELSE COALESCE(b.released, now()) END
			WHERE b.hash IN (SELECT decode(h, 'hex') FROM unnest($1::text[]) AS h)`,
	},
	{
		find: `SELECT format('content %s of user %s is used by no message', c.id, c.user_id) FROM contents c
			WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = c.id) ORDER BY c.id`,
		repair: `WITH gone AS (DELETE FROM contents c WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = c.id)
				RETURNING body_hash)
			UPDATE bodies b SET refs = b.refs - g.n FROM (SELECT body_hash, count(*) n FROM gone GROUP BY body_hash) g
			WHERE b.hash = g.body_hash;
			` + settleUnused,
	},
	{
		find: `SELECT format('mailbox %s (%s): UIDNEXT %s, HIGHESTMODSEQ %s, but a message has UID %s, modseq %s',
				mb.id, mb.name, mb.uidnext, mb.highestmodseq, t.uid, t.modseq)
			FROM mailboxes mb JOIN (SELECT mailbox_id, max(uid) uid, max(modseq) modseq FROM messages GROUP BY mailbox_id) t
				ON t.mailbox_id = mb.id
			WHERE t.uid >= mb.uidnext OR t.modseq > mb.highestmodseq ORDER BY mb.id`,
		repair: `UPDATE mailboxes mb SET uidnext = GREATEST(mb.uidnext, t.uid + 1), highestmodseq = GREATEST(mb.highestmodseq, t.modseq)
			FROM (SELECT mailbox_id, max(uid) uid, max(modseq) modseq FROM messages GROUP BY mailbox_id) t
			WHERE t.mailbox_id = mb.id`,
	},
	{
		// The full-text index (textindex.go): a body in use has its
		// text, or waits in the queue (perhaps marked failed).
		find: `SELECT format('body %s: used, but neither its searchable text nor queued for it', encode(b.hash, 'hex'))
			FROM bodies b WHERE b.refs > 0 AND NOT EXISTS (SELECT 1 FROM body_text t WHERE t.hash = b.hash)
				AND NOT EXISTS (SELECT 1 FROM text_queue q WHERE q.hash = b.hash) ORDER BY b.hash`,
		repair: `INSERT INTO text_queue(hash) SELECT b.hash FROM bodies b WHERE b.refs > 0
			AND NOT EXISTS (SELECT 1 FROM body_text t WHERE t.hash = b.hash) ON CONFLICT DO NOTHING`,
	},
	{
		// A body back in use after its object's deletion was sent
		// holds its bytes in its row (blobs.go).
		find: `SELECT format('body %s: used, but a deletion of its object was sent and its row does not hold its bytes', encode(b.hash, 'hex'))
			FROM bodies b WHERE b.refs > 0 AND b.data IS NULL AND b.delete_sent IS NOT NULL ORDER BY b.hash`,
	},
	{
		find: `SELECT format('user %s: annotations of mailbox %s, which is gone', m.user_id, m.mailbox_id) FROM metadata m
			WHERE m.mailbox_id <> 0 AND NOT EXISTS (SELECT 1 FROM mailboxes mb WHERE mb.id = m.mailbox_id AND mb.user_id = m.user_id)
			GROUP BY m.user_id, m.mailbox_id ORDER BY m.user_id, m.mailbox_id`,
		repair: `DELETE FROM metadata m WHERE m.mailbox_id <> 0
			AND NOT EXISTS (SELECT 1 FROM mailboxes mb WHERE mb.id = m.mailbox_id AND mb.user_id = m.user_id)`,
	},
}

// run runs c's repair (after its lock, if it has one).
func (c consistencyCheck) run(ctx context.Context, tx pgx.Tx) error {
	if c.lock == "" {
		_, err := tx.Exec(ctx, c.repair)
		return err
	}
	rows, err := tx.Query(ctx, c.lock)
	if err != nil {
		return err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) == 0 {
		return err
	}
	_, err = tx.Exec(ctx, c.repair, keys)
	return err
}

// Check verifies the database's invariants (see consistencyChecks) and
// returns a description of each problem found; with repair, it fixes
// them in the same transaction. It may run while nodes serve: it takes
// every user's row lock first, as writes do.
func (s *Store) Check(ctx context.Context, repair bool) ([]string, error) {
	var problems []string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		problems = nil
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users ORDER BY id FOR NO KEY UPDATE`); err != nil {
			return fmt.Errorf("lock users: %w", err)
		}
		for _, c := range consistencyChecks {
			rows, err := tx.Query(ctx, c.find)
			if err != nil {
				return err
			}
			found, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			problems = append(problems, found...)
			if repair && len(found) > 0 && c.repair != "" {
				if err := c.run(ctx, tx); err != nil {
					return fmt.Errorf("repair: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return problems, fmt.Errorf("check: %w", err)
	}
	if s.opts.Blobs != nil {
		missing, err := s.checkBlobObjects(ctx)
		problems = append(problems, missing...)
		if err != nil {
			return problems, fmt.Errorf("check: %w", err)
		}
	}
	differ, err := s.checkStoredText(ctx, repair)
	problems = append(problems, differ...)
	if err != nil {
		return problems, fmt.Errorf("check: %w", err)
	}
	return problems, nil
}

// checkStoredText extracts the text of every body that has one stored
// again (a page of rows at a time, outside the check's transaction) and
// reports those whose stored text differs, which search would answer
// wrongly for; with repair they are queued to be extracted again.
func (s *Store) checkStoredText(ctx context.Context, repair bool) ([]string, error) {
	var problems []string
	last := []byte{}
	for {
		rows, err := s.pool.Query(ctx, `SELECT t.hash, t.header, t.fields, t.body, t.mime, b.data, b.size, c.parts
			FROM body_text t JOIN bodies b ON b.hash = t.hash
			JOIN LATERAL (SELECT c.parts FROM contents c WHERE c.body_hash = t.hash LIMIT 1) c ON true
			WHERE t.hash > $1 ORDER BY t.hash LIMIT 100`, last)
		if err != nil {
			return problems, fmt.Errorf("read stored text: %w", err)
		}
		type stored struct {
			hash, data, parts []byte
			size              int64
			doc               search.Doc
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
			var t stored
			err := r.Scan(&t.hash, &t.doc.Header, &t.doc.Fields, &t.doc.Body, &t.doc.MIME, &t.data, &t.size, &t.parts)
			return t, err
		})
		if err != nil {
			return problems, fmt.Errorf("read stored text: %w", err)
		}
		for _, t := range page {
			data, err := s.bodyBytes(ctx, t.hash, t.data, t.size, t.parts)
			if err != nil {
				return problems, err
			}
			if doc, err := extractText(data, t.parts); err == nil && sameDoc(doc, t.doc) {
				continue
			}
			problems = append(problems, fmt.Sprintf("body %s: its stored searchable text differs from what it holds", blobKey(t.hash)))
			if repair {
				if _, err := s.pool.Exec(ctx, `INSERT INTO text_queue(hash) VALUES($1) ON CONFLICT (hash) DO UPDATE SET failed = false`, t.hash); err != nil {
					return problems, fmt.Errorf("queue text: %w", err)
				}
			}
		}
		if len(page) < 100 {
			return problems, nil
		}
		last = page[len(page)-1].hash
	}
}

// sameDoc reports whether two extracted texts are equal.
func sameDoc(a, b search.Doc) bool {
	return bytes.Equal(a.Header, b.Header) && bytes.Equal(a.Fields, b.Fields) && bytes.Equal(a.Body, b.Body) && bytes.Equal(a.MIME, b.MIME)
}

// checkBlobObjects asks the blob store for the object of every body in
// use (one Stat each, a page of rows at a time, outside the check's
// transaction so writers go on) and reports the missing ones and those of
// the wrong size. It cannot repair them. A body that lost its last
// reference meanwhile, or came back with its bytes in its row, is not
// reported.
func (s *Store) checkBlobObjects(ctx context.Context) ([]string, error) {
	var problems []string
	last := []byte{}
	for {
		rows, err := s.pool.Query(ctx, `SELECT hash, size FROM bodies
			WHERE data IS NULL AND refs > 0 AND hash > $1 ORDER BY hash LIMIT 1000`, last)
		if err != nil {
			return problems, fmt.Errorf("list bodies: %w", err)
		}
		type body struct {
			hash []byte
			size int64
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (body, error) {
			var b body
			err := r.Scan(&b.hash, &b.size)
			return b, err
		})
		if err != nil {
			return problems, fmt.Errorf("list bodies: %w", err)
		}
		for _, b := range page {
			size, err := s.opts.Blobs.Stat(ctx, blobKey(b.hash))
			var problem string
			switch {
			case errors.Is(err, blob.ErrNotFound):
				problem = fmt.Sprintf("body %s: its object is missing from the blob store", blobKey(b.hash))
			case err != nil:
				return problems, err
			case size != b.size:
				problem = fmt.Sprintf("body %s: its object has %d bytes, not %d", blobKey(b.hash), size, b.size)
			default:
				continue
			}
			var inUse bool
			if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bodies WHERE hash = $1 AND refs > 0 AND data IS NULL)`, b.hash).Scan(&inUse); err != nil {
				return problems, fmt.Errorf("check body: %w", err)
			}
			if inUse {
				problems = append(problems, problem)
			}
		}
		if len(page) < 1000 {
			return problems, nil
		}
		last = page[len(page)-1].hash
	}
}
