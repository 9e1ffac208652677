package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/store"
)

// Bodies in a blob store (Options.Blobs): the bodies row (data NULL)
// holds the reference count; the bytes are the object hex(hash). The one
// rule that keeps every committed message's body readable:
//
//	a committed bodies row with refs >= 1 has its object in the store.
//
// It holds because of these steps:
//
//   - Append puts the objects first, outside any lock (putBlobs; Put is
//     idempotent; bodies the database counts as used are skipped), then
//     in its transaction counts the references. A row
//     that this makes refs = 1 — new, or back from pending deletion —
//     holds its row lock until the commit, and while holding it the
//     object is checked and put again if missing (verifyBlobs). So an
//     object that the garbage collector deleted between the first put
//     and the transaction, or whose deletion crashed half-way, is back
//     before the commit.
//   - The transaction that drops a body's last reference leaves the row
//     with refs = 0 and released = now(): pending deletion.
//   - The collector (CollectBlobs) takes rows with refs = 0 released
//     more than a grace period ago FOR UPDATE SKIP LOCKED (PostgreSQL
//     re-checks refs = 0 on the row's newest version after locking, and
//     skips rows an Append holds), deletes their objects, then the rows,
//     and commits. An Append of the same body waits for that commit on
//     the row lock and then inserts the row anew (refs = 1: verified). A
//     collector that dies after deleting objects leaves the rows at
//     refs = 0; an Append that takes one back verifies it.
//   - An object with no row (Append put it, then its transaction failed
//     or its node died) is an orphan: the sweep (SweepBlobs) lists the
//     store and records each orphan older than the grace period as a
//     pending row (refs = 0, released = now()), which the collector
//     deletes a grace period later. A concurrent Append of that body
//     either inserted its row first (the sweep's insert does nothing) or
//     finds the pending row and verifies it.

// putBlobs writes the bodies of preps to the blob store, a few at a time,
// except those the database already counts as used: their objects exist
// (the same body delivered to 500 users is uploaded once). Should such a
// body lose its last reference and be collected before the Append's
// transaction, the transaction brings it back to one reference and
// verifyBlobs puts it again.
func (s *Store) putBlobs(ctx context.Context, preps []prepared) error {
	if s.opts.Blobs == nil {
		return nil
	}
	hashes := make([][]byte, len(preps))
	for i := range preps {
		hashes[i] = preps[i].hash
	}
	rows, err := s.pool.Query(ctx, `SELECT hash FROM bodies WHERE hash = ANY($1) AND refs > 0`, hashes)
	if err != nil {
		return fmt.Errorf("look up bodies: %w", err)
	}
	used, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("look up bodies: %w", err)
	}
	seen := map[string]bool{}
	for _, h := range used {
		seen[blobKey(h)] = true
	}
	const parallel = 4
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range preps {
		key := blobKey(preps[i].hash)
		if seen[key] {
			continue
		}
		seen[key] = true
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.opts.Blobs.Put(ctx, key, preps[i].Body); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("store body: %w", first)
	}
	return nil
}

// verifyTimeout bounds the blob store calls of one write's verifyBlobs.
const verifyTimeout = 2 * time.Minute

// verifyBlobs checks, holding their row locks, that the objects of the
// bodies this write brought to one reference exist, and puts the missing
// ones again.
func (w *wtx) verifyBlobs() error {
	if len(w.unverified) == 0 {
		return nil
	}
	// The transaction holds the user's lock meanwhile: a blob store that
	// does not answer must not keep it for ever.
	ctx, cancel := context.WithTimeout(w.ctx, verifyTimeout)
	defer cancel()
	for _, p := range w.unverified {
		key := blobKey(p.hash)
		size, err := w.a.s.opts.Blobs.Stat(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			w.a.s.log.Info("postgres store: a body's object was collected before its delivery committed; putting it again", "key", key)
			if err := w.a.s.opts.Blobs.Put(ctx, key, p.Body); err != nil {
				return fmt.Errorf("store body again: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("check stored body: %w", err)
		}
		if size != int64(len(p.Body)) {
			return fmt.Errorf("stored body %s has %d bytes, not %d", key, size, len(p.Body))
		}
	}
	w.unverified = w.unverified[:0]
	return nil
}

// blobBody is a message body read from the blob store.
type blobBody struct {
	blob.Object
	parts []byte
}

func (b *blobBody) Parts() []byte { return b.parts }

// fileBlobBody is a blobBody in an ordinary file, which the server may
// send with sendfile (store.FileBody).
type fileBlobBody struct {
	*blobBody
	file *os.File
}

func (b *fileBlobBody) OSFile() *os.File { return b.file }

// openBlobBody opens the object of a body whose row has no data.
func (s *Store) openBlobBody(ctx context.Context, hash []byte, size int64, parts []byte) (store.Body, error) {
	if s.opts.Blobs == nil {
		return nil, errors.New("the body is in a blob store and this tern has none configured (--blob-store)")
	}
	obj, err := s.opts.Blobs.Open(ctx, blobKey(hash))
	if err != nil {
		return nil, err
	}
	if obj.Size() != size {
		obj.Close()
		return nil, fmt.Errorf("stored body %s has %d bytes, not %d", blobKey(hash), obj.Size(), size)
	}
	b := &blobBody{Object: obj, parts: parts}
	if f, ok := obj.(interface{ OSFile() *os.File }); ok {
		return &fileBlobBody{blobBody: b, file: f.OSFile()}, nil
	}
	return b, nil
}

// errNoBlobStore: garbage collection asked of a Store without a blob
// store.
var errNoBlobStore = errors.New("no blob store configured (bodies are in the database)")

// gcBatch is how many objects one collector transaction deletes.
const gcBatch = 100

// CollectBlobs deletes the bodies that no message has used for at least
// grace: their rows and, for bodies in the blob store, their objects,
// gcBatch per transaction; it returns how many it deleted. Several nodes
// may run it at once. Without a blob store it deletes the rows of bodies
// kept in the database only (a row whose object a blob store held, left
// from before a switch to the database, waits for a collector with that
// store).
func (s *Store) CollectBlobs(ctx context.Context, grace time.Duration) (int, error) {
	total := 0
	for {
		n, err := s.collectBatch(ctx, grace)
		total += n
		if err != nil {
			return total, fmt.Errorf("collect blobs: %w", err)
		}
		if n < gcBatch {
			return total, nil
		}
	}
}

// collectBatch deletes up to gcBatch pending bodies in one transaction:
// rows locked, objects deleted, rows deleted, commit.
func (s *Store) collectBatch(ctx context.Context, grace time.Duration) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A body some content still names is never taken, whatever its
		// count says: a count that went too low (a bug, a repair gone
		// wrong) must not cost a message its body, nor stop the
		// collector at the row's foreign key after its object is gone.
		// tern check reports and repairs such counts.
		rows, err := tx.Query(ctx, `SELECT hash, data IS NULL FROM bodies b
			WHERE refs = 0 AND released < now() - make_interval(secs => $1) AND ($3 OR data IS NOT NULL)
				AND NOT EXISTS (SELECT 1 FROM contents c WHERE c.body_hash = b.hash)
			ORDER BY released LIMIT $2 FOR UPDATE OF b SKIP LOCKED`, grace.Seconds(), gcBatch, s.opts.Blobs != nil)
		if err != nil {
			return err
		}
		type pending struct {
			hash     []byte
			external bool
		}
		bodies, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pending, error) {
			var p pending
			err := r.Scan(&p.hash, &p.external)
			return p, err
		})
		if err != nil {
			return err
		}
		hashes := make([][]byte, len(bodies))
		for i, b := range bodies {
			hashes[i] = b.hash
			if b.external {
				if err := s.deleteObject(ctx, b.hash); err != nil {
					return err
				}
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM bodies WHERE hash = ANY($1) AND refs = 0`, hashes); err != nil {
			return err
		}
		n = len(hashes)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// deleteObject deletes a pending body's object from the blob store,
// telling the test hook before and after.
func (s *Store) deleteObject(ctx context.Context, hash []byte) error {
	if err := s.runGCHook(hash, false); err != nil {
		return err
	}
	if err := s.opts.Blobs.Delete(ctx, blobKey(hash)); err != nil {
		return err
	}
	return s.runGCHook(hash, true)
}

func (s *Store) runGCHook(hash []byte, deleted bool) error {
	if s.gcHook == nil {
		return nil
	}
	return s.gcHook(hash, deleted)
}

// SweepBlobs lists the blob store and records every object older than
// grace that no bodies row names as pending deletion (an orphan of a
// delivery that did not commit), to be collected a grace period later.
// It returns how many it recorded.
func (s *Store) SweepBlobs(ctx context.Context, grace time.Duration) (int, error) {
	if s.opts.Blobs == nil {
		return 0, errNoBlobStore
	}
	var hashes [][]byte
	var sizes []int64
	adopted := 0
	flush := func() error {
		if len(hashes) == 0 {
			return nil
		}
		tag, err := s.pool.Exec(ctx, `INSERT INTO bodies(hash, size, refs, released)
			SELECT h, n, 0, now() FROM unnest($1::bytea[], $2::bigint[]) AS o(h, n)
			ON CONFLICT (hash) DO NOTHING`, hashes, sizes)
		if err != nil {
			return err
		}
		adopted += int(tag.RowsAffected())
		hashes, sizes = hashes[:0], sizes[:0]
		return nil
	}
	before := time.Now().Add(-grace)
	err := s.opts.Blobs.List(ctx, func(key string, size int64, modified time.Time) error {
		if modified.After(before) {
			return nil
		}
		h, err := hexHash(key)
		if err != nil {
			return nil
		}
		hashes, sizes = append(hashes, h), append(sizes, size)
		if len(hashes) == 1000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return adopted, fmt.Errorf("sweep blobs: %w", err)
	}
	return adopted, nil
}

// hexHash is blobKey's inverse.
func hexHash(key string) ([]byte, error) {
	if err := blob.CheckKey(key); err != nil {
		return nil, err
	}
	return hex.DecodeString(key)
}

// collectBlobsEvery runs the collector (and the sweep) as gc says until
// ctx ends, logging what it did.
func (s *Store) collectBlobsEvery(ctx context.Context, gc BlobGC) {
	lastSweep := time.Now()
	t := time.NewTicker(gc.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.opts.Blobs != nil && gc.SweepEvery > 0 && time.Since(lastSweep) >= gc.SweepEvery {
			lastSweep = time.Now()
			if n, err := s.SweepBlobs(ctx, gc.Grace); err != nil {
				s.log.Warn("postgres store: blob sweep", "err", err)
			} else if n > 0 {
				s.log.Info("postgres store: orphaned blobs recorded for collection", "count", n)
			}
		}
		if n, err := s.CollectBlobs(ctx, gc.Grace); err != nil {
			s.log.Warn("postgres store: blob collection", "err", err)
		} else if n > 0 {
			s.log.Info("postgres store: unused bodies deleted", "count", n)
		}
	}
}
