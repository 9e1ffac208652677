package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tern-imap/tern/internal/durable"
)

// File keeps objects as files under a directory, which several nodes may
// share (NFS and the like): DIR/<first two hex digits>/<key>. A file is
// written under DIR/tmp, fsynced, renamed to its name and its directory
// fsynced, so a name always holds a complete object.
type File struct {
	dir string
}

// tempMaxAge is how old a file under DIR/tmp must be before OpenFile
// removes it: another node may still be writing a younger one.
const tempMaxAge = time.Hour

// OpenFile opens (creating it if needed) a file blob store in dir and
// removes temporary files that writers left more than an hour ago.
func OpenFile(dir string) (*File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file blob store %q: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("file blob store: %w", err)
	}
	f := &File{dir: abs}
	f.removeOldTemp()
	return f, nil
}

func (f *File) String() string { return "file:" + f.dir }

func (f *File) removeOldTemp() {
	entries, _ := os.ReadDir(filepath.Join(f.dir, "tmp"))
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > tempMaxAge {
			os.Remove(filepath.Join(f.dir, "tmp", e.Name()))
		}
	}
}

func (f *File) path(key string) string {
	return filepath.Join(f.dir, key[:2], key)
}

// Put writes data under key unless a file of that name exists.
func (f *File) Put(ctx context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	final := f.path(key)
	if _, err := openStat(final); err == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	if err := f.makeSubdir(key[:2]); err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(f.dir, "tmp", key+"."+hex.EncodeToString(rnd[:]))
	if err := durable.WriteNew(tmp, data); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	if err := durable.SyncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	return nil
}

// makeSubdir creates DIR/<sub> if missing, durably.
func (f *File) makeSubdir(sub string) error {
	d := filepath.Join(f.dir, sub)
	if _, err := os.Stat(d); err == nil {
		return nil
	}
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return durable.SyncDir(f.dir)
}

// fileObject is an open blob file.
type fileObject struct {
	*os.File
	size int64
}

func (o *fileObject) Size() int64 { return o.size }

// OSFile is the open file, for copies the kernel can do (sendfile).
func (o *fileObject) OSFile() *os.File { return o.File }

func (f *File) Open(ctx context.Context, key string) (Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	fh, err := os.Open(f.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open blob %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", key, err)
	}
	info, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("open blob %s: %w", key, err)
	}
	return &fileObject{File: fh, size: info.Size()}, nil
}

func (f *File) Stat(ctx context.Context, key string) (int64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	size, err := openStat(f.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("stat blob %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", key, err)
	}
	return size, nil
}

// openStat returns the size of the file at path by opening it, not by
// stat: on a directory shared over NFS a stat may be answered from the
// client's attribute cache (for up to a minute) after another node
// deleted the file, while an open asks the server (close-to-open
// consistency). Put's "already there" and the postgres store's check of
// a body brought back to use (settleBlobs) must not trust a stale yes.
func openStat(path string) (int64, error) {
	file, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

func (f *File) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := os.Remove(f.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	return nil
}

// List walks the 256 subdirectories; names that are not keys (none
// should be there) are skipped.
func (f *File) List(ctx context.Context, fn func(key string, size int64, modified time.Time) error) error {
	subs, err := os.ReadDir(f.dir)
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(f.dir, sub.Name()))
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range entries {
			if CheckKey(e.Name()) != nil || e.Name()[:2] != sub.Name() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list blobs: %w", err)
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("list blobs: %w", err)
			}
			if err := fn(e.Name(), info.Size(), info.ModTime()); err != nil {
				return err
			}
		}
	}
	return nil
}
