package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
)

// textIndexer is implemented by backends with a full-text index
// (sqlite.Store.IndexText, postgres.Store.IndexText).
type textIndexer interface {
	IndexText(ctx context.Context, user string, rebuild bool, progress func(done, left int)) error
}

func (e *env) index(args []string) int {
	c := command{name: "tern index", args: "USER",
		about: "Index a user's mail for SEARCH now: everything in the user's index queue\n" +
			"(mail delivered while no server with index.text ran, mail from before the\n" +
			"index existed). `tern serve` does the same in the background; this shows\n" +
			"progress and returns when done. With --rebuild the user's index is emptied\n" +
			"and all mail indexed again. --all instead of USER: every user.\n" +
			"On a postgres store the count is of distinct message bodies.\n" +
			"Safe while the server runs."}
	all := slices.Contains(args, "--all") || slices.Contains(args, "-all")
	if all {
		c.nargs, c.args = 0, ""
	} else {
		c.nargs = 1
	}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	rebuild := fs.Bool("rebuild", false, "empty the index and index all mail again")
	fs.Bool("all", false, "index every user")
	pos, code, done := e.parse(c, fs, args)
	if done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	kind, dir, err := cfg.Backend()
	if err != nil {
		fmt.Fprintf(e.stderr, "tern index: %v\n", err)
		return exitError
	}
	if kind == config.StoreSQLite {
		if _, err := os.Stat(filepath.Join(dir, "tern.db")); err != nil {
			fmt.Fprintf(e.stderr, "tern index: no store in %s: %v\n", dir, err)
			return exitError
		}
	}
	ctx := context.Background()
	err = e.withStore(ctx, cfg, func(st store.Store) error {
		ix, ok := st.(textIndexer)
		if !ok {
			return errors.New("this storage backend has no full-text index")
		}
		users := pos
		if all {
			var err error
			if users, err = st.Users(ctx); err != nil {
				return err
			}
		}
		for _, u := range users {
			if err := e.indexUser(ctx, ix, u, *rebuild); err != nil {
				return fmt.Errorf("user %q: %w", u, err)
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "tern index: %v\n", err)
		return exitError
	}
	return exitOK
}

// indexUser indexes one user, drawing a progress bar on stderr (at most
// a few times a second) and a summary line on stdout.
func (e *env) indexUser(ctx context.Context, ix textIndexer, user string, rebuild bool) error {
	start := time.Now()
	var last time.Time
	var total int
	err := ix.IndexText(ctx, user, rebuild, func(done, left int) {
		total = done
		if now := time.Now(); now.Sub(last) >= 250*time.Millisecond || left == 0 {
			last = now
			fmt.Fprintf(e.stderr, "\r%s %s %d/%d", user, progressBar(done, done+left, 30), done, done+left)
		}
	})
	if total > 0 {
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(e.stdout, "%s: %d messages indexed in %.1f s (%.0f/s)\n", user, total, secs, float64(total)/max(secs, 1e-3))
	return nil
}

// progressBar draws done of total as [#####.....] of width cells.
func progressBar(done, total, width int) string {
	n := width
	if total > 0 {
		n = done * width / total
	}
	b := make([]byte, 0, width+2)
	b = append(b, '[')
	for i := range width {
		if i < n {
			b = append(b, '#')
		} else {
			b = append(b, '.')
		}
	}
	return string(append(b, ']'))
}
