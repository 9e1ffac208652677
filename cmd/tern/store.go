package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

const haveStore = true

// openStore opens the storage backend cfg names (store.url, else the
// data directory). notifier and log may be nil.
func openStore(ctx context.Context, cfg *config.Config, notifier store.Notifier, log *slog.Logger) (store.Store, error) {
	return openStoreIndexing(ctx, cfg, notifier, log, false)
}

// openStoreIndexing is openStore that, with indexText, also runs the
// sqlite store's background full-text indexer (tern serve).
func openStoreIndexing(ctx context.Context, cfg *config.Config, notifier store.Notifier, log *slog.Logger, indexText bool) (store.Store, error) {
	kind, where, err := cfg.Backend()
	if err != nil {
		return nil, err
	}
	if kind == config.StorePostgres {
		st, err := postgres.Open(ctx, where, postgres.Options{Notifier: notifier, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return st, nil
	}
	mode, err := sqlite.ParseFsyncMode(cfg.Store.Fsync)
	if err != nil {
		return nil, err
	}
	opts := sqlite.Options{Logger: log, Fsync: mode, TextIndexer: indexText}
	if notifier != nil {
		opts.Notifier = notifier
	}
	st, err := sqlite.Open(ctx, where, opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", where, err)
	}
	return st, nil
}

// errNotSQLite: a command that works on the embedded store's files only.
var errNotSQLite = errors.New("works on an sqlite store (data directory) only, not on a postgres store")

// sqliteDir returns the directory of the sqlite store cfg names.
func sqliteDir(cfg *config.Config) (string, error) {
	kind, dir, err := cfg.Backend()
	if err != nil {
		return "", err
	}
	if kind != config.StoreSQLite {
		return "", errNotSQLite
	}
	return dir, nil
}

// backupStore snapshots the data directory dir (in use or not) into dest.
func backupStore(ctx context.Context, dir, dest string, progress io.Writer) (*sqlite.Manifest, error) {
	return sqlite.Backup(ctx, dir, dest, sqlite.BackupOptions{TernVersion: version, Progress: progress})
}

// restoreStore brings the backup in src back as the new data directory dir.
func restoreStore(ctx context.Context, src, dir string, progress io.Writer, log *slog.Logger) (*sqlite.Manifest, error) {
	return sqlite.Restore(ctx, src, dir, sqlite.RestoreOptions{Progress: progress, Logger: log})
}
