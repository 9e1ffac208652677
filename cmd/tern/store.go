package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

const haveStore = true

// openStore opens the storage backend cfg names (store.url, else the
// data directory). notifier and log may be nil.
func openStore(ctx context.Context, cfg *config.Config, notifier store.Notifier, log *slog.Logger) (store.Store, error) {
	return openStoreIndexing(ctx, cfg, notifier, log, false, useCommand)
}

// storeUse says who opens a store.
type storeUse int

const (
	useCommand   storeUse = iota // an ordinary command, beside a server or not
	useServer                    // tern serve: yields to other processes' writes (sqlite.Options.Server)
	useExclusive                 // a command that must not run beside a server (sqlite.Options.Exclusive)
)

// openStoreIndexing is openStore that, with indexText, also runs the
// store's full-text indexer (tern serve with index.text). use says who
// opens it: for tern serve the postgres store also runs its blob
// collector.
func openStoreIndexing(ctx context.Context, cfg *config.Config, notifier store.Notifier, log *slog.Logger, indexText bool, use storeUse) (store.Store, error) {
	kind, where, err := cfg.Backend()
	if err != nil {
		return nil, err
	}
	mode, err := sqlite.ParseFsyncMode(cfg.Store.Fsync)
	if err != nil {
		return nil, err
	}
	if kind == config.StorePostgres {
		opts := postgresOptions(cfg, mode, notifier, log, indexText, use)
		if opts.Blobs, err = openBlobStore(ctx, cfg); err != nil {
			return nil, err
		}
		st, err := postgres.Open(ctx, where, opts)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return st, nil
	}
	opts := sqlite.Options{Logger: log, Fsync: mode, TextIndexer: indexText, Server: use == useServer, Exclusive: use == useExclusive,
		KeepBase64: cfg.Store.KeepBase64, IdleUsers: cfg.Store.IdleUsers}
	if opts.IdleUsers == 0 {
		opts.IdleUsers = -1 // none stay open
	}
	if notifier != nil {
		opts.Notifier = notifier
	}
	st, err := sqlite.Open(ctx, where, opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", where, err)
	}
	return st, nil
}

// postgresOptions are the postgres store's options for cfg (blob store
// aside): a server (use) runs the blob collector, and with indexText the
// full-text indexer too.
func postgresOptions(cfg *config.Config, mode sqlite.FsyncMode, notifier store.Notifier, log *slog.Logger, indexText bool, use storeUse) postgres.Options {
	opts := postgres.Options{Notifier: notifier, Logger: log, ReadURL: cfg.Store.ReadURL,
		RelaxedCommits: mode == sqlite.FsyncOptimized, TextIndexer: indexText}
	if use == useServer {
		opts.BlobGC = postgres.BlobGC{Every: blobGCEvery, Grace: cfg.Store.BlobGrace, SweepEvery: blobSweepEvery}
	}
	return opts
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

// How often tern serve collects unused bodies of a file or S3 blob store,
// and lists the whole store for orphans (blobs.go in the postgres store).
const (
	blobGCEvery    = 10 * time.Minute
	blobSweepEvery = 24 * time.Hour
)

// openBlobStore opens the blob store store.blobs names; nil for db.
func openBlobStore(ctx context.Context, cfg *config.Config) (blob.Store, error) {
	if cfg.Store.BlobsInDB() {
		return nil, nil
	}
	b, err := blob.Open(ctx, cfg.Store.Blobs)
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return b, nil
}
