package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// exitProblems is returned by "tern check" when the store has problems
// (that --repair could not fix).
const exitProblems = 3

// checker is implemented by backends that can verify themselves
// (sqlite.Store.Check).
type checker interface {
	Check(ctx context.Context, repair bool) ([]string, error)
}

// compacter is implemented by the embedded store (sqlite.Store.Compact).
type compacter interface {
	Compact(ctx context.Context, user string) (sqlite.Compacted, error)
}

func (e *env) check(args []string) int {
	c := command{name: "tern check",
		about: "Check the consistency of the mail store: every body file exists with the\n" +
			"recorded size, reference counts match, no file is unreferenced, and every\n" +
			"mailbox's UIDNEXT and HIGHESTMODSEQ are above what its messages use.\n" +
			"Prints one line per problem. With --repair, fixes what can be fixed\n" +
			"(counters raised, reference counts recomputed, leftover files of\n" +
			"interrupted writes removed) and checks again; missing or damaged bodies\n" +
			"are only reported. An embedded store is checked only while no server\n" +
			"has it open (a server started meanwhile refuses to start); a postgres\n" +
			"store may be checked while nodes run (the check holds every user's\n" +
			"write lock).\n\n" +
			"With --compact (embedded store only), each user's mail.db is then\n" +
			"rewritten without its free pages (SQLite VACUUM, one user at a time),\n" +
			"e.g. after the migration to schema 14 or after much mail was expunged;\n" +
			"the sizes (mail.db and its log) before and after are printed. VACUUM\n" +
			"needs up to twice the size of the user's mail.db in free disk space\n" +
			"while it runs (a temporary copy and the write-ahead log).\n\n" +
			"Exit status: 0 consistent, 3 problems remain, 1 the check could not run,\n" +
			"2 usage error (--compact with a postgres store)."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	repair := fs.Bool("repair", false, "fix what can be fixed, then check again")
	compact := fs.Bool("compact", false, "then give each user's free pages in mail.db back (VACUUM; embedded store only)")
	if _, code, done := e.parse(c, fs, args); done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	kind, dir, err := cfg.Backend()
	if err != nil {
		fmt.Fprintf(e.stderr, "tern check: %v\n", err)
		return exitError
	}
	if *compact && kind != config.StoreSQLite {
		fmt.Fprintln(e.stderr, "tern check: --compact applies to the embedded store (data directory) only; "+
			"PostgreSQL gives space back with its own VACUUM (autovacuum). Nothing was checked.")
		return exitUsage
	}
	// Do not create a store where there is none: that is a typo'd --data.
	if _, err := os.Stat(filepath.Join(dir, "tern.db")); kind == config.StoreSQLite && err != nil {
		fmt.Fprintf(e.stderr, "tern check: no store in %s: %v\n", dir, err)
		return exitError
	}
	ctx := context.Background()
	var remaining []string
	err = e.withStoreFor(ctx, cfg, useExclusive, func(st store.Store) error {
		ck, ok := st.(checker)
		if !ok {
			return errors.New("this storage backend cannot be checked")
		}
		problems, err := ck.Check(ctx, *repair)
		for _, p := range problems {
			fmt.Fprintln(e.stdout, p)
		}
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		remaining = problems
		if *repair && len(problems) > 0 {
			fmt.Fprintf(e.stdout, "repaired; checking again\n")
			remaining, err = ck.Check(ctx, false)
			for _, p := range remaining {
				fmt.Fprintf(e.stdout, "not repaired: %s\n", p)
			}
			if err != nil {
				return fmt.Errorf("check after repair: %w", err)
			}
		}
		if *compact {
			return e.compact(ctx, st)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "tern check: %v\n", err)
		return exitError
	}
	if len(remaining) > 0 {
		fmt.Fprintf(e.stdout, "%d problem(s)\n", len(remaining))
		return exitProblems
	}
	fmt.Fprintln(e.stdout, "store is consistent")
	return exitOK
}

// compact runs VACUUM on every user's mail.db, one after the other (tern
// check --compact), after the check and whatever it found: a progress
// line per user on stderr, its sizes (mail.db and its log) and the total
// on stdout.
func (e *env) compact(ctx context.Context, st store.Store) error {
	cp, ok := st.(compacter)
	if !ok {
		return errors.New("this storage backend cannot be compacted")
	}
	users, err := st.Users(ctx)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	var before, after int64
	for i, user := range users {
		fmt.Fprintf(e.stderr, "compacting %s (%d/%d)\n", user, i+1, len(users))
		r, err := cp.Compact(ctx, user)
		if err != nil {
			return err // "compact ..."
		}
		before, after = before+r.Before, after+r.After
		fmt.Fprintf(e.stdout, "compacted %s: %d -> %d bytes (%s freed)\n", user, r.Before, r.After, sqlite.FormatBytes(r.Before-r.After))
		if r.FilesPacked > 0 {
			fmt.Fprintf(e.stdout, "packed %d body file(s) of %s: %s freed\n", r.FilesPacked, user, sqlite.FormatBytes(r.FilesSaved))
		}
	}
	fmt.Fprintf(e.stdout, "compacted %d user(s): %d -> %d bytes, %s freed\n", len(users), before, after, sqlite.FormatBytes(before-after))
	return nil
}
