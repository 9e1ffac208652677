package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tern-imap/tern/internal/blob"
)

// Copying a backup's bodies, optionally from an earlier backup (tern
// backup --since PREV). Bodies are content-addressed: a file of PREV's
// blobs/ named by a key holds that body's bytes, whenever it was copied,
// so it is as good as a fresh fetch. It is taken over when PREV's
// manifest lists the key with the file's size: hard-linked into DEST
// (copied when linking fails, e.g. across filesystems), so DEST stays
// complete when PREV is deleted. Every file taken over is read again and
// checked against its SHA-256 (a local read, far cheaper than a fetch
// from S3): a damaged file of PREV is not reused but fetched, and said so.

// blobRef is a body the snapshot lists in a blob store; needed: some
// message uses it (else it may already be collected).
type blobRef struct {
	key    string
	needed bool
}

// prevBackup is the earlier backup bodies are taken from.
type prevBackup struct {
	dir    string           // the backup directory
	bodies map[string]int64 // content key -> size, from its manifest
}

// openPrev reads the manifest of the earlier backup in dir ("": none,
// nil). A manifest without a list of bodies (a backup made by an older
// tern) gives nothing to take over: every body is fetched.
func openPrev(dir string, w io.Writer) (*prevBackup, error) {
	if dir == "" {
		return nil, nil
	}
	m, err := ReadDumpManifest(dir)
	if err != nil {
		return nil, err
	}
	if m.Blobs > 0 && len(m.Bodies) == 0 {
		progress(w, "%s: its manifest lists no bodies (made by an older tern): every body is fetched", dir)
	} else if int64(len(m.Bodies)) != m.Blobs {
		return nil, fmt.Errorf("manifest of %s lists %d bodies but counts %d: damaged backup", dir, len(m.Bodies), m.Blobs)
	}
	return &prevBackup{dir: dir, bodies: m.Bodies}, nil
}

// from names p for the progress line ("" without one).
func (p *prevBackup) from() string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf(", or from the backup in %s (it lists %d)", p.dir, len(p.bodies))
}

// bodyCopy fills a backup's blobs/ directory and counts into m.
type bodyCopy struct {
	blobs    blob.Store
	dir      string      // DEST/blobs
	prev     *prevBackup // nil: fetch every body
	progress io.Writer
	m        *DumpManifest
}

// run copies the bodies refs names, then fsyncs the directory.
func (c *bodyCopy) run(ctx context.Context, refs []blobRef) error {
	c.m.Bodies = make(map[string]int64, len(refs))
	for _, r := range refs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.one(ctx, r); err != nil {
			return fmt.Errorf("body %s: %w", r.key, err)
		}
	}
	return syncDir(c.dir)
}

// one takes the body r from the earlier backup if it has it intact,
// else from the blob store.
func (c *bodyCopy) one(ctx context.Context, r blobRef) error {
	path := filepath.Join(c.dir, r.key)
	n, ok, err := c.reuse(r.key, path)
	if err != nil {
		return err
	}
	if ok {
		c.count(r.key, n, true)
		return nil
	}
	n, err = copyBlobOut(ctx, c.blobs, r.key, path)
	if errors.Is(err, blob.ErrNotFound) && !r.needed {
		return nil // unused, and already collected
	}
	if err != nil {
		return err
	}
	c.count(r.key, n, false)
	return nil
}

func (c *bodyCopy) count(key string, n int64, reused bool) {
	c.m.Blobs++
	c.m.BlobBytes += n
	c.m.Bodies[key] = n
	if reused {
		c.m.ReusedBlobs++
		c.m.ReusedBytes += n
	}
}

// reuse puts the earlier backup's file of key at path, checked; ok false
// (and nothing at path) when that backup does not list key or its file
// is unusable, which is reported. err is for what cannot be cleaned up.
func (c *bodyCopy) reuse(key, path string) (n int64, ok bool, err error) {
	if c.prev == nil {
		return 0, false, nil
	}
	size, listed := c.prev.bodies[key]
	if !listed {
		return 0, false, nil
	}
	src := filepath.Join(c.prev.dir, dumpBlobs, key)
	n, err = takeOver(src, path, key, size)
	if err == nil {
		return n, true, nil
	}
	progress(c.progress, "body %s of %s not reused (%v): fetched from the blob store", key, c.prev.dir, err)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, false, fmt.Errorf("remove the unusable copy: %w", err)
	}
	return 0, false, nil
}

// linkFile is os.Link; tests make it fail to exercise the copy.
var linkFile = os.Link

// takeOver hard-links (or, failing that, copies) src, a body file of
// size bytes named by its key, to the new path, and checks path's
// content against the key.
func takeOver(src, path, key string, size int64) (int64, error) {
	fi, err := os.Lstat(src)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, errors.New("not a regular file")
	}
	if fi.Size() != size {
		return 0, fmt.Errorf("%d bytes, its manifest says %d", fi.Size(), size)
	}
	if err := linkFile(src, path); err != nil {
		return copyLocal(src, path, key)
	}
	// The linked file was fsynced by the earlier backup; the new name is
	// made durable by the directory's fsync.
	sum, err := fileSHA256(path)
	if err != nil {
		return 0, err
	}
	if sum != key {
		return 0, errors.New("content does not match its key: damaged")
	}
	return size, nil
}

// copyLocal copies the file src to the new file path, checked against
// key, and fsyncs it.
func copyLocal(src, path, key string) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return writeChecked(f, key, path)
}
