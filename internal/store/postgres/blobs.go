package postgres

import (
	"cmp"
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
// holds the reference count; the bytes are the object hex(hash). Two
// rules keep every committed message's body readable:
//
//	a committed bodies row with refs >= 1 and data NULL has its object
//	in the store, and no DELETE of that object was ever sent;
//
//	once a DELETE of an object may have been sent, no row names it
//	again until deleteFence has passed (a late DELETE, queued in a
//	load balancer or sent by a node that then died, can land long after
//	its sender gave up on it).
//
// They hold because of these steps:
//
//   - Append puts the objects first, outside any lock (putBlobs; Put is
//     idempotent; bodies the database counts as used, or whose object
//     may be deleted, are skipped), then in its transaction counts the
//     references. A row that this makes refs = 1 (new, or back from
//     pending deletion) holds its row lock until the commit. If the
//     collector never marked it (delete_sent NULL), its object is checked
//     and put again if missing while holding that lock (settleBlobs): an
//     orphan the sweep recorded, or a row inserted anew after its
//     predecessor was dropped. If it was marked, the Append writes the
//     body's bytes into the row instead (data): the object's name is
//     retired for good, and the row is read like a body kept in the
//     database.
//   - The transaction that drops a body's last reference leaves the row
//     with refs = 0 and released = now(): pending deletion.
//   - The collector (CollectBlobs) takes rows with refs = 0 released
//     more than a grace period ago FOR UPDATE SKIP LOCKED (PostgreSQL
//     re-checks refs = 0 on the row's newest version after locking, and
//     skips rows an Append holds), sets their delete_sent and commits;
//     only then does it send the DELETEs, holding no lock, and records
//     those that succeeded (object_gone). Every DELETE of a batch is sent
//     within deleteWindow of the moment before its mark, or not at all.
//     A row whose DELETE failed or was not sent goes to the back of the
//     queue (released = now()) and is marked and tried again a grace
//     period later (a collector that died first: once the window has
//     passed). The row itself stays, refs = 0, until deleteFence has
//     passed since its last mark, so that an Append of the same body
//     meanwhile finds it marked. A collector that dies after marking
//     leaves rows marked: the same.
//   - An object with no row (Append put it, then its transaction failed
//     or its node died; or Append put it again after its DELETE was
//     sent, and the row went after its fence) is an orphan: the sweep
//     (SweepBlobs) lists the store and records each orphan older than
//     the grace period as a pending row (refs = 0, released = now()),
//     which the collector deletes a grace period later. A concurrent Append of that body either inserted its row
//     first (the sweep's insert does nothing) or finds the pending row and
//     checks its object.

// deleteFence is how long an object's name stays retired after the
// collector last marked it for deletion. The collector sends no DELETE
// of a batch later than deleteWindow after the moment before the mark;
// S3 refuses a request signed more than 15 minutes from its own clock
// (SigV4; every attempt is signed afresh); the rest is room for clocks
// that disagree. Not bounded: requests sent unsigned (a store without
// credentials), and a file store's unlink stuck in a hard NFS mount.
const deleteFence = time.Hour

// deleteWindow is how long after the moment before it marks a batch the
// collector may send the batch's DELETEs; a row is marked again only
// once this has passed since its last mark (by then the collector that
// marked it sends it no more).
const deleteWindow = 2 * time.Minute

// putBlobs writes the bodies of preps to the blob store, a few at a time,
// except those the database already counts as used: their objects exist
// (the same body delivered to 500 users is uploaded once); and those
// whose objects the collector may have deleted: their names are retired,
// so the bytes will go in the row. Should such a body's row be dropped
// before the Append's transaction, the transaction inserts it anew and
// settleBlobs puts the object.
func (s *Store) putBlobs(ctx context.Context, preps []prepared) error {
	if s.opts.Blobs == nil {
		return nil
	}
	hashes := make([][]byte, len(preps))
	for i := range preps {
		hashes[i] = preps[i].hash
	}
	rows, err := s.pool.Query(ctx, `SELECT hash FROM bodies WHERE hash = ANY($1) AND (refs > 0 OR delete_sent IS NOT NULL)`, hashes)
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

// verifyTimeout bounds the blob store calls of one write's settleBlobs.
const verifyTimeout = 2 * time.Minute

// settleBlobs, holding the row locks of the bodies this write brought to
// one reference, writes the bytes of the retired ones into their rows
// and checks that the objects of the others exist, putting the missing
// ones again.
func (w *wtx) settleBlobs() error {
	for _, p := range w.retired {
		if _, err := w.tx.Exec(w.ctx, `UPDATE bodies SET data = $2 WHERE hash = $1 AND data IS NULL`, p.hash, p.Body); err != nil {
			return fmt.Errorf("store body in its row: %w", err)
		}
	}
	w.retired = w.retired[:0]
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
			w.a.s.log.Info("postgres store: a body's object is missing as its delivery commits; putting it again", "key", key)
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

// gcBatch is how many bodies one collector statement takes.
const gcBatch = 100

// CollectBlobs deletes the bodies that no message has used for at least
// grace: the objects of bodies in the blob store and the rows of bodies
// kept in the database, gcBatch at a time; it returns how many it
// deleted. The rows of deleted objects go deleteFence later (also here).
// Several nodes may run it at once. Without a blob store it deletes only
// rows (a row whose object a blob store holds, left from before a switch
// to the database, waits for a collector with that store). A step that
// fails does not keep the others from running.
func (s *Store) CollectBlobs(ctx context.Context, grace time.Duration) (int, error) {
	total := 0
	var errs []error
	for _, step := range []func(context.Context, time.Duration) (int, bool, error){s.deleteObjects, s.dropHeld, s.dropGone} {
		var first error // of this step: its batches may fail alike
		for more := true; more; {
			var n int
			var err error
			n, more, err = step(ctx, grace)
			total += n
			first = cmp.Or(first, err)
		}
		if first != nil {
			errs = append(errs, first)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return total, fmt.Errorf("collect blobs: %w", err)
	}
	return total, nil
}

// pendingSQL is the condition on a bodies row b that no content uses.
// A body some content still names is never taken, whatever its count
// says: a count that went too low (a bug, a repair gone wrong) must not
// cost a message its body, nor stop the collector at the row's foreign
// key. tern check reports and repairs such counts.
const pendingSQL = `b.refs = 0 AND NOT EXISTS (SELECT 1 FROM contents c WHERE c.body_hash = b.hash)`

// markForDeletionSQL marks up to $2 rows of bodies in the blob store
// unused for $1 seconds, and not marked in the last $3 seconds, for the
// deletion of their objects; it returns their hashes and marks.
const markForDeletionSQL = `UPDATE bodies SET delete_sent = now() WHERE hash = ANY(ARRAY(
		SELECT hash FROM bodies b WHERE ` + pendingSQL + ` AND data IS NULL AND NOT object_gone
			AND released < now() - make_interval(secs => $1)
			AND (delete_sent IS NULL OR delete_sent < now() - make_interval(secs => $3))
		ORDER BY released LIMIT $2 FOR UPDATE OF b SKIP LOCKED))
	AND refs = 0 AND data IS NULL RETURNING hash, delete_sent`

// deleteObjects deletes up to gcBatch objects of pending bodies: it marks
// their rows (delete_sent) in a transaction of its own, committed
// (synchronously) before any DELETE is sent, then deletes the objects, a
// few at a time, within deleteWindow of the moment before the mark, and
// records the ones deleted (object_gone); the others go to the back of
// the queue (released = now()). It returns how many objects it deleted
// and whether more may wait.
func (s *Store) deleteObjects(ctx context.Context, grace time.Duration) (int, bool, error) {
	if s.opts.Blobs == nil {
		return 0, false, nil
	}
	deadline := time.Now().Add(s.deleteWindow)
	var hashes [][]byte
	var marks []time.Time
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The marks must outlive a crash of the database server even
		// where its default is not to wait for the disk: a mark lost
		// after its DELETE was sent lets the name be used again.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, markForDeletionSQL, grace.Seconds(), gcBatch, s.deleteWindow.Seconds())
		if err != nil {
			return err
		}
		hashes, marks = nil, nil
		var hash []byte
		var mark time.Time
		_, err = pgx.ForEachRow(rows, []any{&hash, &mark}, func() error {
			hashes, marks = append(hashes, hash), append(marks, mark)
			return nil
		})
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("mark bodies for deletion: %w", err)
	}
	deleted, err := s.deleteMarked(ctx, hashes, deadline)
	n := 0
	for _, ok := range deleted {
		if ok {
			n++
		}
	}
	if len(hashes) > 0 {
		// Only rows still as marked (one marked again by another
		// collector waits for that one's word): those deleted are
		// recorded, the others go to the back of the queue, tried again
		// a grace period later, so that objects the store refuses to
		// delete do not keep the others waiting.
		if _, rerr := s.pool.Exec(ctx, `UPDATE bodies b SET object_gone = d.ok,
				released = CASE WHEN d.ok THEN b.released ELSE now() END
			FROM unnest($1::bytea[], $2::timestamptz[], $3::bool[]) AS d(h, m, ok)
			WHERE b.hash = d.h AND b.delete_sent = d.m AND b.refs = 0 AND b.data IS NULL`, hashes, marks, deleted); rerr != nil {
			return n, false, fmt.Errorf("record deleted objects: %w", rerr)
		}
	}
	// A batch that deleted nothing ends the step: the store is failing
	// or too slow for the window.
	more := len(hashes) == gcBatch && n > 0
	if err != nil {
		return n, more, fmt.Errorf("delete objects: %w", err)
	}
	return n, more, nil
}

// deleteMarked deletes the objects of hashes, four at a time, sending
// none after deadline; it reports which it deleted and the first error.
func (s *Store) deleteMarked(ctx context.Context, hashes [][]byte, deadline time.Time) ([]bool, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	deleted := make([]bool, len(hashes))
	const parallel = 4
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i, hash := range hashes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.deleteObject(ctx, hash, deadline)
			mu.Lock()
			defer mu.Unlock()
			deleted[i] = err == nil
			first = cmp.Or(first, err)
		})
	}
	wg.Wait()
	return deleted, first
}

// errDeleteWindow: a DELETE not sent because its batch's window closed.
var errDeleteWindow = errors.New("the batch's window for DELETEs closed; tried again in a later run")

// deleteObject deletes a marked body's object from the blob store,
// telling the test hook before and after. It sends nothing once the
// wall clock is past deadline (ctx's deadline follows the monotonic
// clock, which a paused machine may not advance).
func (s *Store) deleteObject(ctx context.Context, hash []byte, deadline time.Time) error {
	if err := s.runGCHook(hash, false); err != nil {
		return err
	}
	if time.Now().Round(0).After(deadline) || ctx.Err() != nil {
		return errDeleteWindow
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

// dropHeld deletes up to gcBatch rows of pending bodies that hold their
// bytes (kept in the database, or back after a deletion of their object
// was sent) released more than grace ago, once deleteFence has passed
// since their last mark. It returns how many and whether more may wait.
func (s *Store) dropHeld(ctx context.Context, grace time.Duration) (int, bool, error) {
	n, err := s.dropRows(ctx, pickHeldSQL, grace.Seconds(), gcBatch, s.fence.Seconds())
	return n, n == gcBatch, err
}

// dropRowsSQL is the statement of dropRows.
func dropRowsSQL(pick string) string {
	return `DELETE FROM bodies WHERE hash = ANY(ARRAY(` + pick + `)) AND refs = 0`
}

// pickHeldSQL locks up to $2 rows of unused bodies holding their bytes,
// released more than $1 seconds ago and not marked in the last $3.
const pickHeldSQL = `SELECT hash FROM bodies b WHERE ` + pendingSQL + ` AND data IS NOT NULL
		AND released < now() - make_interval(secs => $1)
		AND (delete_sent IS NULL OR delete_sent <= now() - make_interval(secs => $3))
	ORDER BY released LIMIT $2 FOR UPDATE OF b SKIP LOCKED`

// dropGone deletes up to gcBatch rows of bodies whose object was
// deleted, once deleteFence has passed since their last mark. They were
// counted when their objects went: it returns 0, and whether more may
// wait.
func (s *Store) dropGone(ctx context.Context, _ time.Duration) (int, bool, error) {
	n, err := s.dropRows(ctx, pickGoneSQL, gcBatch, s.fence.Seconds())
	return 0, n == gcBatch, err
}

// pickGoneSQL locks up to $1 rows of unused bodies whose object was
// deleted, marked more than $2 seconds ago.
const pickGoneSQL = `SELECT hash FROM bodies b WHERE ` + pendingSQL + ` AND data IS NULL AND object_gone
		AND delete_sent <= now() - make_interval(secs => $2)
	ORDER BY delete_sent LIMIT $1 FOR UPDATE OF b SKIP LOCKED`

// dropRows deletes the rows of the bodies that pick (locking them)
// selects, those still unused, and returns how many. (The picked hashes
// are an array, so that the rows are found by key whatever the planner
// guesses of how many rows are at zero references.)
func (s *Store) dropRows(ctx context.Context, pick string, args ...any) (int, error) {
	tag, err := s.pool.Exec(ctx, dropRowsSQL(pick), args...)
	if err != nil {
		return 0, fmt.Errorf("drop bodies: %w", err)
	}
	return int(tag.RowsAffected()), nil
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
