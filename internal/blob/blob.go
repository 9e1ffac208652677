// Package blob stores message bodies outside the metadata database, as
// immutable objects named by a content key (the hex SHA-256 of the
// bytes): a directory tree on a (shared) filesystem (File) or an
// S3-compatible object store (S3). The metadata store decides what may
// be deleted (reference counts, garbage collection); a blob store only
// keeps bytes.
//
// Put is idempotent: writing a key again leaves the same bytes. An object
// is complete or absent: a reader never sees half of one.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// ErrNotFound: no object under the key.
var ErrNotFound = errors.New("blob not found")

// ErrUnavailable marks an error that says the blob store could not be
// reached or cannot serve now: the call may work when tried again.
var ErrUnavailable = errors.New("blob store unavailable")

// Store keeps immutable objects by content key.
type Store interface {
	// Put stores data under key; the object is durable when Put returns
	// nil. Putting a key that exists leaves it as it is.
	Put(ctx context.Context, key string, data []byte) error
	// Open opens the object for reading; its bytes are read on demand
	// (streamed), not loaded whole. ErrNotFound if there is none.
	Open(ctx context.Context, key string) (Object, error)
	// Stat returns the object's size, or ErrNotFound.
	Stat(ctx context.Context, key string) (int64, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object, in no particular order, with its
	// size and when it was written.
	List(ctx context.Context, fn func(key string, size int64, modified time.Time) error) error
	// String names the store for logs (no credentials).
	String() string
}

// Object is an open object.
type Object interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// CheckKey accepts the keys the stores use: 64 lower-case hex digits.
// Keys become file names and object names, so nothing else is allowed.
func CheckKey(key string) error {
	if len(key) != 64 {
		return fmt.Errorf("blob key %q: not 64 hex digits", key)
	}
	for _, c := range key {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("blob key %q: not 64 hex digits", key)
		}
	}
	return nil
}

// Open opens the blob store a URL names: file:DIR (or file:///abs/dir)
// or s3://BUCKET?endpoint=http://HOST:PORT&region=REGION&path_style=true
// (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). "db"
// is not a blob store of this package: the PostgreSQL store keeps such
// bodies itself; callers check for it first.
func Open(ctx context.Context, spec string) (Store, error) {
	switch {
	case strings.HasPrefix(spec, "file:"):
		dir := strings.TrimPrefix(spec, "file:")
		if strings.HasPrefix(dir, "//") {
			u, err := url.Parse(spec)
			if err != nil {
				return nil, fmt.Errorf("blob store %q: %w", spec, err)
			}
			if u.Host != "" && u.Host != "localhost" {
				return nil, fmt.Errorf("blob store %q: a file URL names no host", spec)
			}
			dir = u.Path
		}
		if dir == "" {
			return nil, fmt.Errorf("blob store %q: no directory", spec)
		}
		return OpenFile(dir)
	case strings.HasPrefix(spec, "s3://"):
		cfg, err := ParseS3URL(spec)
		if err != nil {
			return nil, err
		}
		return OpenS3(ctx, cfg)
	}
	return nil, fmt.Errorf("blob store %q: want db, file:DIR or s3://BUCKET?endpoint=...", spec)
}
