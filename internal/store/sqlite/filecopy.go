package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
)

// ErrNotEmpty is returned by Backup and Restore when their target
// directory exists and has entries.
var ErrNotEmpty = errors.New("directory exists and is not empty")

// makeEmptyDir makes dir an empty directory: it creates it (and its
// parents) durably, or accepts an existing empty one. Anything else is
// refused: a backup or restore never mixes its files with others.
func makeEmptyDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		return syncDir(filepath.Dir(filepath.Clean(dir)))
	case err != nil:
		return fmt.Errorf("inspect %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%s: %w", dir, ErrNotEmpty)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("%s: %w", dir, ErrNotEmpty)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("inspect %s: %w", dir, err)
	}
	return nil
}

// dirSet remembers the directories a backup or restore created or added
// entries to, so that all of them can be fsynced at the end.
type dirSet struct {
	order []string
	seen  map[string]bool
}

func newDirSet() *dirSet { return &dirSet{seen: map[string]bool{}} }

// make creates dir (its parent must exist or be made before) and records
// it and its parent for syncing.
func (d *dirSet) make(dir string) error {
	if d.seen[dir] {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	d.add(filepath.Dir(dir))
	d.add(dir)
	return nil
}

// add records dir as one whose entries must be made durable.
func (d *dirSet) add(dir string) {
	if !d.seen[dir] {
		d.seen[dir] = true
		d.order = append(d.order, dir)
	}
}

// forget drops dir and everything below it (removed again).
func (d *dirSet) forget(dir string) {
	d.order = slices.DeleteFunc(d.order, func(p string) bool {
		if rel, err := filepath.Rel(dir, p); err == nil && (rel == "." || filepath.IsLocal(rel)) {
			delete(d.seen, p)
			return true
		}
		return false
	})
}

// syncAll fsyncs every recorded directory, deepest last-created first, so
// an entry is durable before the entry that names its directory.
func (d *dirSet) syncAll() error {
	for i := len(d.order) - 1; i >= 0; i-- {
		if err := syncDir(d.order[i]); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies src to the new file dst (which must not exist) and
// fsyncs it. It returns the number of bytes copied and, if hashed, their
// SHA-256 in hex. A src that does not exist gives an error satisfying
// errors.Is(err, os.ErrNotExist). Once src is open, its bytes are read to
// the end even if it is unlinked meanwhile.
func copyFile(ctx context.Context, src, dst string, hashed bool) (n int64, sum string, err error) {
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, "", fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("copy to %s: %w", dst, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("copy to %s: %w", dst, cerr)
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if hashed {
		h := sha256.New()
		n, err = io.Copy(io.MultiWriter(out, h), in)
		sum = hex.EncodeToString(h.Sum(nil))
	} else {
		n, err = io.Copy(out, in) // copy_file_range where the system has it
	}
	if err != nil {
		return n, "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		return n, "", fmt.Errorf("sync %s: %w", dst, err)
	}
	return n, sum, nil
}

// copyWorkers is how many files copyAll copies at once: their fsyncs
// overlap on the device instead of waiting one after the other.
const copyWorkers = 16

// copyJob is one file for copyAll.
type copyJob struct {
	src, dst string
	n        int64 // bytes copied
	err      error
}

// copyAll copies every job (with copyFile, unhashed), copyWorkers at a
// time, and sets each job's n and err. A missing source only fails its
// job; the first other error stops the rest and is returned.
func copyAll(ctx context.Context, jobs []copyJob) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(copyWorkers, len(jobs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				j := &jobs[i]
				j.n, _, j.err = copyFile(ctx, j.src, j.dst, false)
				if j.err != nil && !errors.Is(j.err, os.ErrNotExist) {
					once.Do(func() { first = j.err })
					cancel()
				}
			}
		})
	}
	wg.Wait()
	return first
}

// syncFile fsyncs a file written by someone else (SQLite's VACUUM INTO)
// and returns its size and, if hashed, its SHA-256 in hex.
func syncFile(path string, hashed bool) (size int64, sum string, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, "", fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, "", fmt.Errorf("sync %s: %w", path, err)
	}
	if !hashed {
		fi, err := f.Stat()
		if err != nil {
			return 0, "", fmt.Errorf("sync %s: %w", path, err)
		}
		return fi.Size(), "", nil
	}
	h := sha256.New()
	if size, err = io.Copy(h, f); err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", path, err)
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// writeFileDurably writes data to path through a temporary file, fsync and
// rename, then fsyncs the directory.
func writeFileDurably(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}
