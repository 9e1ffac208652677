package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
)

// blobCollector is implemented by stores that keep bodies in a blob store
// (postgres.Store).
type blobCollector interface {
	SweepBlobs(ctx context.Context, grace time.Duration) (int, error)
	CollectBlobs(ctx context.Context, grace time.Duration) (int, error)
}

// blobsGC is "tern blobs-gc": one run of what tern serve does every few
// minutes, and optionally the orphan sweep it does daily.
func (e *env) blobsGC(args []string) int {
	c := command{name: "tern blobs-gc",
		about: "Delete from a postgres store's file or S3 blob store (--blob-store) the bodies\n" +
			"no message has used for the grace period (store.blob_grace, default 1h).\n" +
			"With --sweep, first list the whole blob store and record objects that no\n" +
			"body row names (left by deliveries that did not commit) for deletion a\n" +
			"grace period later. Safe while nodes run; tern serve does the same by itself."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	sweep := fs.Bool("sweep", false, "also look for orphaned objects (lists the whole blob store)")
	if _, code, done := e.parse(c, fs, args); done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	if kind, _, err := cfg.Backend(); err != nil || kind != config.StorePostgres || cfg.Store.BlobsInDB() {
		fmt.Fprintf(e.stderr, "%s: needs a postgres store (--store) with a file or S3 blob store (--blob-store)\n", c.name)
		return exitError
	}
	ctx := context.Background()
	err := e.withStore(ctx, cfg, func(st store.Store) error {
		gc, ok := st.(blobCollector)
		if !ok {
			return errors.New("this store keeps no blob store")
		}
		if *sweep {
			n, err := gc.SweepBlobs(ctx, cfg.Store.BlobGrace)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "orphaned objects recorded for deletion: %d\n", n)
		}
		n, err := gc.CollectBlobs(ctx, cfg.Store.BlobGrace)
		fmt.Fprintf(e.stdout, "unused objects deleted: %d\n", n)
		return err
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	return exitOK
}
