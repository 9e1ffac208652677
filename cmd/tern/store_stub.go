//go:build !tern_sqlite

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/tern-imap/tern/internal/store"
)

// errNoBackend is returned until the sqlite backend is merged; build with
// -tags tern_sqlite to use it.
const haveStore = false

var errNoBackend = errors.New("storage backend not built in (build with -tags tern_sqlite)")

func openStore(ctx context.Context, dir string, notifier store.Notifier, log *slog.Logger) (store.Store, error) {
	return nil, errNoBackend
}
