// Package durable writes files and directory entries so that they
// survive a crash or power failure once a call returns: the file's data
// is synced before it is closed, and a directory is fsynced after
// entries were created, renamed or removed in it.
package durable

import (
	"fmt"
	"os"
)

// WriteNew creates path (which must not exist), writes data and syncs
// it (SyncData). On failure the partial file is removed. The new directory entry is
// durable only after SyncDir of its directory.
func WriteNew(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := SyncData(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyncDir fsyncs directory dir, making the entries created, renamed or
// removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
