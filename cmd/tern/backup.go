package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store/postgres"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

func (e *env) backup(args []string) int {
	c := command{name: "tern backup", args: "DEST", nargs: 1,
		about: "Take a consistent snapshot of the data directory into DEST, a directory\n" +
			"that is created (an existing one must be empty). The server may keep\n" +
			"running: each user's database is copied in one read transaction (SQLite\n" +
			"VACUUM INTO) that does not block writers, then the message files it\n" +
			"references are copied. Everything written is fsynced; tern-backup.json is\n" +
			"written last and marks the backup complete. Restore with \"tern restore\".\n\n" +
			"With --store postgres://...: pg_dump (custom format) of the database in\n" +
			"one snapshot, nodes may keep serving, plus the bodies of the blob store\n" +
			"(--blob-store) that the snapshot references, each checked by its SHA-256.\n" +
			"With --since PREV, an earlier such backup: bodies it holds are hard-linked\n" +
			"(else copied) from it, each checked by its SHA-256, instead of fetched;\n" +
			"DEST is complete all the same (PREV may be deleted)."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	since := fs.String("since", "", "(postgres store) take the bodies an earlier backup in `PREV` holds from there")
	pos, code, done := e.parse(c, fs, args)
	if done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	if kind, url, err := cfg.Backend(); err == nil && kind == config.StorePostgres {
		return e.backupPostgres(cfg, url, pos[0], *since)
	}
	dir, err := sqliteDir(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern backup: %v\n", err)
		return exitError
	}
	if *since != "" {
		fmt.Fprintf(e.stderr, "%s: --since works with a postgres store only: an embedded store's message files are copied from the local disk, and are checked against no SHA-256 that would make an earlier backup's copy safe to reuse\n", c.name)
		return exitUsage
	}
	start := time.Now()
	m, err := backupStore(context.Background(), dir, pos[0], e.stdout)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern %v\n", err) // err says "backup: ..."
		return exitError
	}
	fmt.Fprintf(e.stdout, "backup of %s complete in %s: %s\n", dir, time.Since(start).Round(time.Millisecond), summary(m))
	return exitOK
}

func (e *env) restore(args []string) int {
	c := command{name: "tern restore", args: "SRC", nargs: 1,
		about: "Restore the backup in SRC (made by \"tern backup\") as the data directory\n" +
			"given by --data, which must not exist or be empty. Mailboxes keep their\n" +
			"UIDVALIDITY, UIDs, flags and modseqs, so clients need no resync. Files are\n" +
			"verified against the backup's manifest and fsynced, and the restored store\n" +
			"is checked as by \"tern check\".\n\n" +
			"With --store postgres://...: a backup made from a postgres store goes\n" +
			"into that database, which must be new and empty (pg_restore in one\n" +
			"transaction), its bodies into --blob-store; then the store is checked."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	pos, code, done := e.parse(c, fs, args)
	if done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	if kind, url, err := cfg.Backend(); err == nil && kind == config.StorePostgres {
		return e.restorePostgres(cfg, url, pos[0])
	}
	if postgres.IsDump(pos[0]) {
		fmt.Fprintf(e.stderr, "tern restore: %s is a backup of a postgres store: restore it with --store postgres://... (a new, empty database)\n", pos[0])
		return exitError
	}
	dir, err := sqliteDir(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern restore: %v\n", err)
		return exitError
	}
	start := time.Now()
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	m, err := restoreStore(context.Background(), pos[0], dir, e.stdout, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern %v\n", err) // err says "restore: ..."
		return exitError
	}
	fmt.Fprintf(e.stdout, "restore of backup from %s into %s complete in %s: %s; store is consistent\n",
		m.Created.Format(time.RFC3339), dir, time.Since(start).Round(time.Millisecond), summary(m))
	return exitOK
}

func summary(m *sqlite.Manifest) string {
	return fmt.Sprintf("%d users, %d messages, %d body files, %s", len(m.Users), m.Messages, m.Bodies, sqlite.FormatBytes(m.BodyBytes))
}

// backupPostgres is tern backup of a postgres store (postgres/dump.go).
func (e *env) backupPostgres(cfg *config.Config, url, dest, since string) int {
	ctx := context.Background()
	blobs, err := openBlobStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern backup: %v\n", err)
		return exitError
	}
	start := time.Now()
	m, err := postgres.Dump(ctx, url, dest, postgres.DumpOptions{Blobs: blobs, Grace: cfg.Store.BlobGrace,
		TernVersion: version, Progress: e.stdout, Since: since})
	if err != nil {
		fmt.Fprintf(e.stderr, "tern %v\n", err) // err says "backup: ..."
		return exitError
	}
	fmt.Fprintf(e.stdout, "backup of the postgres store complete in %s: %s\n", time.Since(start).Round(time.Millisecond), dumpSummary(m))
	if since != "" {
		fmt.Fprintf(e.stdout, "bodies: %s\n", reuseSummary(m, since))
	}
	return exitOK
}

// reuseSummary says how many bodies (and bytes) a backup with --since
// took from the earlier backup and how many it fetched.
func reuseSummary(m *postgres.DumpManifest, since string) string {
	return fmt.Sprintf("%d reused from %s (%s), %d fetched from the blob store (%s)",
		m.ReusedBlobs, since, sqlite.FormatBytes(m.ReusedBytes),
		m.Blobs-m.ReusedBlobs, sqlite.FormatBytes(m.BlobBytes-m.ReusedBytes))
}

// restorePostgres is tern restore into a postgres store: the backup goes
// into the (empty) database, then the store is opened, which migrates an
// older schema, and checked.
func (e *env) restorePostgres(cfg *config.Config, url, src string) int {
	ctx := context.Background()
	blobs, err := openBlobStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern restore: %v\n", err)
		return exitError
	}
	start := time.Now()
	m, err := postgres.RestoreDump(ctx, src, url, postgres.RestoreOptions{Blobs: blobs, Progress: e.stdout})
	if err != nil {
		fmt.Fprintf(e.stderr, "tern %v\n", err) // err says "restore: ..."
		return exitError
	}
	st, err := postgres.Open(ctx, url, postgres.Options{Blobs: blobs})
	if err != nil {
		fmt.Fprintf(e.stderr, "tern restore: %v\n", err)
		return exitError
	}
	defer st.Close()
	problems, err := st.Check(ctx, false)
	for _, p := range problems {
		fmt.Fprintln(e.stdout, p)
	}
	if err == nil && len(problems) > 0 {
		err = fmt.Errorf("%d problem(s) in the restored store", len(problems))
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "tern restore: %v\n", err)
		return exitError
	}
	fmt.Fprintf(e.stdout, "restore of backup from %s complete in %s: %s; store is consistent\n",
		m.Created.Format(time.RFC3339), time.Since(start).Round(time.Millisecond), dumpSummary(m))
	return exitOK
}

func dumpSummary(m *postgres.DumpManifest) string {
	return fmt.Sprintf("%d users, %d messages, %d bodies of the blob store (%s)", m.Users, m.Messages, m.Blobs, sqlite.FormatBytes(m.BlobBytes))
}
