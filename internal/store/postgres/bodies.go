package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Bodies are content-addressed: the bodies table holds each distinct
// message body once, under its SHA-256, with a count of the contents rows
// (deliveries, in any account) that use it. A body is added or counted up
// in the transaction that stores the message, and counted down and
// deleted at zero in the transaction that drops its last content, so a
// body can never go while a committed message references it (the
// foreign key contents.body_hash also forbids it). Concurrent deliveries
// of the same bytes meet on the body's row lock: the upsert waits for a
// transaction that is dropping the row and then inserts it again.
//
// The bytes are kept in the database (bytea) for now: nothing but
// PostgreSQL to run. A body store outside the database (files, S3) would
// keep this table and its counts without the data column, writing an
// object before the commit that references it and deleting it after the
// commit that dropped it; that is not built yet.

// bodyHash is the content address of a body.
func bodyHash(data []byte) []byte {
	h := sha256.Sum256(data)
	return h[:]
}

// queueSaveBody adds to b the statement that stores data under hash or,
// if the body is already there, counts one more reference to it.
func queueSaveBody(b *pgx.Batch, hash, data []byte) {
	b.Queue(`INSERT INTO bodies(hash, size, refs, data) VALUES($1, $2, 1, $3)
		ON CONFLICT (hash) DO UPDATE SET refs = bodies.refs + 1`, hash, len(data), data)
}

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
func releaseBodies(ctx context.Context, tx pgx.Tx, br bodyRefs) error {
	if len(br.hashes) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE bodies b SET refs = b.refs - d.n
		FROM unnest($1::bytea[], $2::bigint[]) AS d(h, n) WHERE b.hash = d.h`, br.hashes, br.counts); err != nil {
		return fmt.Errorf("release bodies: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM bodies WHERE hash = ANY($1) AND refs <= 0`, br.hashes); err != nil {
		return fmt.Errorf("delete unused bodies: %w", err)
	}
	return nil
}

// dropUnusedContents deletes the contents among ids that no message uses
// any more (after an expunge or a mailbox deletion) and releases their
// bodies.
func dropUnusedContents(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	br, err := deadBodies(ctx, tx, `WITH gone AS (
		DELETE FROM contents c WHERE c.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = c.id)
		RETURNING body_hash)
		SELECT body_hash, count(*) FROM gone GROUP BY body_hash`, ids)
	if err != nil {
		return err
	}
	return releaseBodies(ctx, tx, br)
}

// memBody is an open message body read from the database.
type memBody struct {
	*bytes.Reader
	parts []byte
}

func (b *memBody) Parts() []byte { return b.parts }
func (b *memBody) Close() error  { return nil }
