package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
)

// blobCollector is implemented by stores whose unused bodies wait for a
// collector (postgres.Store).
type blobCollector interface {
	SweepBlobs(ctx context.Context, grace time.Duration) (int, error)
	CollectBlobs(ctx context.Context, grace time.Duration) (int, error)
}

// blobsGC is "tern blobs-gc": one run of what tern serve does every few
// minutes, and optionally the orphan sweep it does daily.
func (e *env) blobsGC(args []string) int {
	c := command{name: "tern blobs-gc",
		about: "Delete from a postgres store the bodies no message has used for the grace\n" +
			"period (store.blob_grace, default 1h): rows of bodies kept in the database,\n" +
			"and objects of a file or S3 blob store (--blob-store); the rows of deleted\n" +
			"objects go an hour after their DELETE, so that one that lands late finds\n" +
			"no body in use under that name.\n" +
			"With --sweep (a blob store only), first list the whole blob store and record\n" +
			"objects that no body row names (left by deliveries that did not commit) for\n" +
			"deletion a grace period later. Safe while nodes run; tern serve does the\n" +
			"same by itself."}
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
	if kind, _, err := cfg.Backend(); err != nil || kind != config.StorePostgres {
		fmt.Fprintf(e.stderr, "%s: needs a postgres store (--store)\n", c.name)
		return exitError
	}
	if *sweep && cfg.Store.BlobsInDB() {
		fmt.Fprintf(e.stderr, "%s: --sweep needs a file or S3 blob store (--blob-store)\n", c.name)
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
		fmt.Fprintf(e.stdout, "unused bodies deleted: %d\n", n)
		return err
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	return exitOK
}
