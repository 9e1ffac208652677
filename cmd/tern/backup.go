package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

func (e *env) backup(args []string) int {
	c := command{name: "tern backup", args: "DEST", nargs: 1,
		about: "Take a consistent snapshot of the data directory into DEST, a directory\n" +
			"that is created (an existing one must be empty). The server may keep\n" +
			"running: each user's database is copied in one read transaction (SQLite\n" +
			"VACUUM INTO) that does not block writers, then the message files it\n" +
			"references are copied. Everything written is fsynced; tern-backup.json is\n" +
			"written last and marks the backup complete. Restore with \"tern restore\"."}
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
	dir, err := sqliteDir(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern backup: %v\n", err)
		return exitError
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
			"is checked as by \"tern check\"."}
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
