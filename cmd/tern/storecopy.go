package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/storecopy"
)

const storeUsage = `Usage:
  tern store copy --from sqlite:DIR --to postgres://...   copy a whole store, UIDs and modseqs kept
  tern store copy --from postgres://A --to postgres://B --user NAME
                                                         move users to another database

Run "tern store copy -h" for its flags.
`

func (e *env) storeCmd(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, storeUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, storeUsage)
		return exitOK
	case "copy":
		return e.storeCopy(args[1:])
	}
	fmt.Fprintf(e.stderr, "tern store: unknown command %q\n\n%s", args[0], storeUsage)
	return exitUsage
}

func (e *env) storeCopy(args []string) int {
	c := command{name: "tern store copy",
		about: "Copy every user of the --from store into the --to store: password hashes,\n" +
			"mailboxes with UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and expunge history,\n" +
			"messages with their UIDs, MODSEQs, flags and dates, other users' private\n" +
			"\\Seen of shared mailboxes, subscriptions, quotas, annotations, Sieve scripts\n" +
			"and ACLs, so that clients synchronised before (CONDSTORE/QRESYNC) need no\n" +
			"full resync. Stop tern serve on the source first: an sqlite source is\n" +
			"refused while a server uses it (from a postgres source, copying some users\n" +
			"with --user, keep those users out: no sessions, no deliveries). A change\n" +
			"to a mailbox during the copy (checked at the end of each mailbox and of\n" +
			"each user) stops it. Restartable: run it again after an interruption and it\n" +
			"continues where it stopped; nothing is copied twice. A rerun refuses a user\n" +
			"whose copy in the target no longer matches the source (the source changed\n" +
			"what was copied, or the target has been used since): delete the user in\n" +
			"the target and copy again, or leave a target in use alone. Progress goes\n" +
			"to standard error. Mailbox ids (RFC 8474 MAILBOXID) are the target's own."}
	fs := e.newFlagSet(c)
	from := fs.String("from", "", "source store: sqlite:DIR or postgres://...")
	to := fs.String("to", "", "target store: postgres://USER:PASS@HOST:PORT/DB?sslmode=...")
	batch := fs.Int("batch", 500, "messages per transaction")
	var users []string
	fs.Func("user", "copy only this user (repeat for more; default: every user)", func(u string) error {
		users = append(users, u)
		return nil
	})
	blobs := fs.String("blob-store", "", "where the target keeps message bodies: db, file:DIR or s3://BUCKET?endpoint=...&region=...&path_style=true (`URL`); default: db")
	fromBlobs := fs.String("from-blob-store", "", "where a postgres source keeps message bodies, as its nodes' store.blobs (`URL`); default: db")
	if _, code, done := e.parse(c, fs, args); done {
		return code
	}
	opts := storecopy.Options{Progress: e.stderr, BatchMessages: *batch, Users: users}
	if err := e.runStoreCopy(context.Background(), config.Store{URL: *from, Blobs: *fromBlobs}, config.Store{URL: *to, Blobs: *blobs}, opts); err != nil {
		fmt.Fprintf(e.stderr, "tern store copy: %v\n", err)
		return exitError
	}
	return exitOK
}

var errCopyKinds = errors.New("copies from an sqlite store (--from sqlite:DIR) or a postgres store to another postgres store (--to postgres://...)")

func (e *env) runStoreCopy(ctx context.Context, from, to config.Store, opts storecopy.Options) error {
	srcCfg, dstCfg := &config.Config{Store: from}, &config.Config{Store: to}
	sk, dir, err := srcCfg.Backend()
	if err != nil {
		return err
	}
	dk, _, err := dstCfg.Backend()
	if err != nil {
		return err
	}
	if from.URL == "" || to.URL == "" || from.URL == to.URL || (sk != config.StoreSQLite && sk != config.StorePostgres) || dk != config.StorePostgres {
		return errCopyKinds
	}
	// Do not create an empty store where there is none: a typo'd path.
	if sk == config.StoreSQLite {
		if _, err := os.Stat(filepath.Join(dir, "tern.db")); err != nil {
			return fmt.Errorf("no store in %s: %w", dir, err)
		}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// An sqlite source is opened as tern check opens it: refused while a
	// tern serve uses the directory, and no server starts during the copy.
	src, err := openStoreIndexing(ctx, srcCfg, nil, log, false, useExclusive)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openStore(ctx, dstCfg, nil, log)
	if err != nil {
		return err
	}
	defer dst.Close()
	target, ok := dst.(storecopy.Target)
	if !ok {
		return errCopyKinds
	}
	_, err = storecopy.Copy(ctx, src, target, opts)
	return err
}
