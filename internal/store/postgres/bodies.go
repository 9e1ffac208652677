package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Bodies are content-addressed: the bodies table holds each distinct
// message body once, under its SHA-256, with a count of the contents rows
// (deliveries, in any account) that use it. A body is added or counted up
// in the transaction that stores the message, and counted down in the
// transaction that drops its last content, so a body can never go while a
// committed message references it (the foreign key contents.body_hash
// also forbids it). Concurrent deliveries of the same bytes meet on the
// body's row lock: the upsert waits for a transaction that is dropping
// the row and then inserts it again.
//
// Where the bytes are depends on Options.Blobs: nil keeps them in the row
// (data, bytea), written in the transaction that counts the first
// reference, so nothing but PostgreSQL is needed. With a blob store the
// row's data is NULL and the bytes are an object named hex(hash) there;
// blobs.go says how they are written before the commit that references
// them. Either way, the transaction that drops a body's last reference
// leaves its row pending deletion (refs = 0, released = now()), and only
// the collector (CollectBlobs) deletes it, with its object, a grace period
// later. A body that comes back meanwhile (the same bytes delivered or
// appended again: a client that moves by APPEND and EXPUNGE, a list mail
// re-sent, a restore) is counted up again, its bytes and searchable text
// still there; the expunge's transaction does not delete the row, its
// bytes and its text (foreign keys, TOAST) while the client waits.

// bodyHash is the content address of a body.
func bodyHash(data []byte) []byte {
	h := sha256.Sum256(data)
	return h[:]
}

// blobKey is the blob store's name for a body.
func blobKey(hash []byte) string { return hex.EncodeToString(hash) }

// queueSaveBody adds to b the statement that stores p's body or, if the
// body is already there, counts one more reference to it. With a blob
// store, a body whose count this makes 1 (new, or back from pending
// deletion) is added to w.unverified: its object must be checked under
// the row lock (settleBlobs) before the commit; or, if a deletion of its
// object may have been sent, to w.retired: its bytes go in the row.
func (w *wtx) queueSaveBody(b *pgx.Batch, p *prepared) {
	if w.a.s.opts.Blobs == nil {
		// A row of an external body at zero references (switched from a
		// blob store back to db) takes the bytes, since its object may be
		// gone already. A row that has its bytes keeps them: the same
		// bytes, not written again.
		b.Queue(`WITH b AS (INSERT INTO bodies(hash, size, refs, data) VALUES($1, $2, 1, $3)
			ON CONFLICT (hash) DO UPDATE SET refs = bodies.refs + 1, released = NULL,
				data = CASE WHEN bodies.refs <= 0 AND bodies.data IS NULL THEN EXCLUDED.data ELSE bodies.data END
			RETURNING refs)
			`+queueTextSQL, p.hash, len(p.Body), p.Body)
		return
	}
	b.Queue(`WITH b AS (INSERT INTO bodies(hash, size, refs) VALUES($1, $2, 1)
		ON CONFLICT (hash) DO UPDATE SET refs = bodies.refs + 1, released = NULL
		RETURNING refs, data IS NULL AS external, delete_sent IS NOT NULL AS retired),
		q AS (`+queueTextSQL+`)
		SELECT refs, external, retired FROM b`, p.hash, len(p.Body)).QueryRow(func(row pgx.Row) error {
		var refs int64
		var external, retired bool
		if err := row.Scan(&refs, &external, &retired); err != nil {
			return fmt.Errorf("save body: %w", err)
		}
		switch {
		case refs != 1 || !external:
		case retired:
			w.retired = append(w.retired, p)
		default:
			w.unverified = append(w.unverified, p)
		}
		return nil
	})
}

// queueTextSQL, after a CTE b that stored body $1 and returned its
// refs, queues the body for text extraction (textindex.go) when this
// reference is its first and the body has no text: a new body, or one
// back from zero references whose text was never made (the text goes
// only with the row, foreign key, so a row pending deletion keeps it).
const queueTextSQL = `INSERT INTO text_queue(hash) SELECT $1 FROM b WHERE b.refs = 1
	AND NOT EXISTS (SELECT 1 FROM body_text t WHERE t.hash = $1) ON CONFLICT DO NOTHING`

// bodyRefs is how many references to each body a transaction drops.
type bodyRefs struct {
	hashes [][]byte
	counts []int64
}

// deadBodies runs query (returning body_hash, count) and collects the
// references it names, sorted by hash so that transactions take body row
// locks in one order.
func deadBodies(ctx context.Context, q querier, query string, args ...any) (bodyRefs, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return bodyRefs{}, fmt.Errorf("find bodies to release: %w", err)
	}
	type ref struct {
		hash []byte
		n    int64
	}
	refs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ref, error) {
		var x ref
		err := r.Scan(&x.hash, &x.n)
		return x, err
	})
	if err != nil {
		return bodyRefs{}, fmt.Errorf("find bodies to release: %w", err)
	}
	slices.SortFunc(refs, func(a, b ref) int { return bytes.Compare(a.hash, b.hash) })
	var br bodyRefs
	for _, r := range refs {
		br.hashes = append(br.hashes, r.hash)
		br.counts = append(br.counts, r.n)
	}
	return br, nil
}

// releaseBodies counts down the references in br, leaving the bodies
// nobody uses any more pending deletion.
func releaseBodies(ctx context.Context, tx querier, br bodyRefs) error {
	if len(br.hashes) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE bodies b SET refs = b.refs - d.n,
			released = CASE WHEN b.refs - d.n <= 0 THEN now() END
		FROM unnest($1::bytea[], $2::bigint[]) AS d(h, n) WHERE b.hash = d.h`, br.hashes, br.counts); err != nil {
		return fmt.Errorf("release bodies: %w", err)
	}
	return nil
}

// queueDropUnusedContents adds to b the deletion of the contents among
// ids that no message uses any more (after an expunge or a mailbox
// deletion) and the release of their bodies: one statement. It locks the
// bodies in hash order (as releaseBodies does: two users releasing the
// same bodies do not deadlock) and counts them down, marking the ones
// left unused pending deletion.
func queueDropUnusedContents(b *pgx.Batch, ids []int64) {
	if len(ids) == 0 {
		return
	}
	b.Queue(`WITH gone AS (
			DELETE FROM contents c WHERE c.id `+inArray("$1", len(ids))+` AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = c.id)
			RETURNING body_hash),
		d AS (SELECT body_hash AS h, count(*) AS n FROM gone GROUP BY body_hash),
		lk AS (SELECT hash, refs - d.n AS left_refs FROM bodies JOIN d ON d.h = bodies.hash
			ORDER BY hash FOR NO KEY UPDATE OF bodies)
		UPDATE bodies b SET refs = lk.left_refs, released = CASE WHEN lk.left_refs <= 0 THEN now() END
		FROM lk WHERE b.hash = lk.hash`, ids)
}
