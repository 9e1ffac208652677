package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

const haveStore = true

// openStore opens the storage backend in dir. notifier and log may be nil.
func openStore(ctx context.Context, dir string, notifier store.Notifier, log *slog.Logger) (store.Store, error) {
	opts := sqlite.Options{Logger: log}
	if notifier != nil {
		opts.Notifier = notifier
	}
	st, err := sqlite.Open(ctx, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	return st, nil
}
