package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
)

// exitProblems is returned by "tern check" when the store has problems
// (that --repair could not fix).
const exitProblems = 3

// checker is implemented by backends that can verify themselves
// (sqlite.Store.Check).
type checker interface {
	Check(ctx context.Context, repair bool) ([]string, error)
}

func (e *env) check(args []string) int {
	c := command{name: "tern check",
		about: "Check the consistency of the mail store: every body file exists with the\n" +
			"recorded size, reference counts match, no file is unreferenced, and every\n" +
			"mailbox's UIDNEXT and HIGHESTMODSEQ are above what its messages use.\n" +
			"Prints one line per problem. With --repair, fixes what can be fixed\n" +
			"(counters raised, reference counts recomputed, leftover files of\n" +
			"interrupted writes removed) and checks again; missing or damaged bodies\n" +
			"are only reported. Stop the server first.\n\n" +
			"Exit status: 0 consistent, 3 problems remain, 1 the check could not run."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	repair := fs.Bool("repair", false, "fix what can be fixed, then check again")
	if _, code, done := e.parse(c, fs, args); done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	// Do not create a store where there is none: that is a typo'd --data.
	dir, err := sqliteDir(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern check: %v\n", err)
		return exitError
	}
	if _, err := os.Stat(filepath.Join(dir, "tern.db")); err != nil {
		fmt.Fprintf(e.stderr, "tern check: no store in %s: %v\n", dir, err)
		return exitError
	}
	ctx := context.Background()
	var remaining []string
	err = e.withStore(ctx, cfg, func(st store.Store) error {
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
