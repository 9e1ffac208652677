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
// (data, bytea), written and deleted in the same transactions as the
// counts, so nothing but PostgreSQL is needed and there is nothing to
// collect. With a blob store the row's data is NULL and the bytes are an
// object named hex(hash) there; blobs.go says how they are written before
// the commit that references them and deleted only by the garbage
// collector.

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
// the row lock (verifyBlobs) before the commit.
func (w *wtx) queueSaveBody(b *pgx.Batch, p *prepared) {
	if w.a.s.opts.Blobs == nil {
		// A row of an external body at zero references (switched from a
		// blob store back to db) takes the bytes, since its object may be
		// gone already.
		b.Queue(`WITH b AS (INSERT INTO bodies(hash, size, refs, data) VALUES($1, $2, 1, $3)
			ON CONFLICT (hash) DO UPDATE SET refs = bodies.refs + 1, released = NULL,
				data = CASE WHEN bodies.refs <= 0 THEN EXCLUDED.data ELSE bodies.data END
			RETURNING refs)
			`+queueTextSQL, p.hash, len(p.Body), p.Body)
		return
	}
	b.Queue(`WITH b AS (INSERT INTO bodies(hash, size, refs) VALUES($1, $2, 1)
		ON CONFLICT (hash) DO UPDATE SET refs = bodies.refs + 1, released = NULL
		RETURNING refs, data IS NULL AS external),
		q AS (`+queueTextSQL+`)
		SELECT refs, external FROM b`, p.hash, len(p.Body)).QueryRow(func(row pgx.Row) error {
		var refs int64
		var external bool
		if err := row.Scan(&refs, &external); err != nil {
			return fmt.Errorf("save body: %w", err)
		}
		if refs == 1 && external {
			w.unverified = append(w.unverified, p)
		}
		return nil
	})
}

// queueTextSQL, after a CTE b that stored body $1 and returned its
// refs, queues the body for text extraction (textindex.go) when this
// reference is its first: a new body, or one back from zero references
// (whose text may have gone with an earlier row, or never been made).
const queueTextSQL = `INSERT INTO text_queue(hash) SELECT $1 FROM b WHERE b.refs = 1 ON CONFLICT DO NOTHING`

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

// releaseBodies counts down the references in br and deletes the bodies
// nobody uses any more.
func releaseBodies(ctx context.Context, tx querier, br bodyRefs) error {
	if len(br.hashes) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE bodies b SET refs = b.refs - d.n,
			released = CASE WHEN b.refs - d.n <= 0 THEN now() END
		FROM unnest($1::bytea[], $2::bigint[]) AS d(h, n) WHERE b.hash = d.h`, br.hashes, br.counts); err != nil {
		return fmt.Errorf("release bodies: %w", err)
	}
	if _, err := tx.Exec(ctx, deleteUnusedInline+` AND hash = ANY($1)`, br.hashes); err != nil {
		return fmt.Errorf("delete unused bodies: %w", err)
	}
	return nil
}

// deleteUnusedInline deletes the bodies kept in the database that nobody
// uses; unused bodies in a blob store stay, pending deletion (blobs.go).
const deleteUnusedInline = `DELETE FROM bodies WHERE refs <= 0 AND data IS NOT NULL`

// queueDropUnusedContents adds to b the deletion of the contents among
// ids that no message uses any more (after an expunge or a mailbox
// deletion) and the release of their bodies: one statement. It locks the
// bodies in hash order (as releaseBodies does: two users releasing the
// same bodies do not deadlock), deletes those kept in the database that
// nobody uses now and counts down the others, marking the ones left
// unused pending deletion (blobs.go). The deletion used to follow as a
// statement of its own, which found the released bodies by their release
// time and deleted the row versions the count-down had just written.
func queueDropUnusedContents(b *pgx.Batch, ids []int64) {
	if len(ids) == 0 {
		return
	}
	b.Queue(`WITH gone AS (
			DELETE FROM contents c WHERE c.id `+inArray("$1", len(ids))+` AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = c.id)
			RETURNING body_hash),
		d AS (SELECT body_hash AS h, count(*) AS n FROM gone GROUP BY body_hash),
		lk AS (SELECT hash, refs - d.n AS left_refs, data IS NOT NULL AS inline FROM bodies JOIN d ON d.h = bodies.hash
			ORDER BY hash FOR NO KEY UPDATE OF bodies),
		del AS (DELETE FROM bodies b USING lk WHERE b.hash = lk.hash AND lk.left_refs = 0 AND lk.inline)
		UPDATE bodies b SET refs = lk.left_refs, released = CASE WHEN lk.left_refs <= 0 THEN now() END
		FROM lk WHERE b.hash = lk.hash AND NOT (lk.left_refs = 0 AND lk.inline)`, ids)
}
