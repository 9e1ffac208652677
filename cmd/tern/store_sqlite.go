package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

const haveStore = true

// openStore opens the storage backend in dir. notifier and log may be
// nil; fsync is the configured store.fsync ("" means always).
func openStore(ctx context.Context, dir string, notifier store.Notifier, log *slog.Logger, fsync string) (store.Store, error) {
	mode, err := sqlite.ParseFsyncMode(fsync)
	if err != nil {
		return nil, err
	}
	opts := sqlite.Options{Logger: log, Fsync: mode}
	if notifier != nil {
		opts.Notifier = notifier
	}
	st, err := sqlite.Open(ctx, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	return st, nil
}

// backupStore snapshots the data directory dir (in use or not) into dest.
func backupStore(ctx context.Context, dir, dest string, progress io.Writer) (*sqlite.Manifest, error) {
	return sqlite.Backup(ctx, dir, dest, sqlite.BackupOptions{TernVersion: version, Progress: progress})
}

// restoreStore brings the backup in src back as the new data directory dir.
func restoreStore(ctx context.Context, src, dir string, progress io.Writer, log *slog.Logger) (*sqlite.Manifest, error) {
	return sqlite.Restore(ctx, src, dir, sqlite.RestoreOptions{Progress: progress, Logger: log})
}
