package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/delivery"
	"github.com/tern-imap/tern/internal/store"
)

func (e *env) importCmd(args []string) int {
	c := command{name: "tern import", args: "NAME PATH", nargs: 2,
		about: "Import mail for user NAME from PATH: an mbox file, a Maildir (Dovecot's\n" +
			"layout: Maildir++ .Sub.Folder directories, flags from file names,\n" +
			"dovecot-keywords, INTERNALDATE from the file's mtime) or a directory of mbox\n" +
			"files (INTERNALDATE from the \"From \" line). Importing the same source again\n" +
			"stores nothing twice. Without --mailbox the source's top folder goes to INBOX\n" +
			"and its subfolders keep their names; with --mailbox BOX everything goes\n" +
			"below BOX."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	mailbox := fs.String("mailbox", "", "target `mailbox` for the top folder (subfolders go below it)")
	format := fs.String("mbox-format", "mboxrd", "how body \"From \" lines are quoted in mbox files: mboxrd or mboxo")
	pos, code, done := e.parse(c, fs, args)
	if done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	err := e.withAccount(ctx, cfg, pos[0], func(acct store.Account) error {
		pr := e.progressPrinter("imported")
		st, err := delivery.Import(ctx, acct, pos[1], delivery.ImportOptions{
			Mailbox: *mailbox, MboxFormat: *format, Progress: pr.update,
		})
		pr.done()
		el := pr.elapsed()
		fmt.Fprintf(e.stdout, "imported %d messages (%s) into %d mailboxes, skipped %d already present, in %s (%.0f messages/s)\n",
			st.Imported, formatSize(st.Bytes), len(st.Mailboxes), st.Duplicates, el.Round(time.Millisecond),
			float64(st.Imported+st.Duplicates)/max(el.Seconds(), 0.001))
		return err
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	return exitOK
}

func (e *env) exportCmd(args []string) int {
	c := command{name: "tern export", args: "NAME DIR", nargs: 2,
		about: "Export all of user NAME's mailboxes into DIR (which must not exist or be\n" +
			"empty). maildir: Dovecot's Maildir++ layout (INBOX in DIR, others in\n" +
			"DIR/.A.B), flags in file names, keywords in dovecot-keywords, the\n" +
			"INTERNALDATE as mtime. mbox: one mboxrd file per mailbox (DIR/INBOX,\n" +
			"DIR/A/B), flags in Status/X-Status/X-Keywords, the INTERNALDATE in the\n" +
			"\"From \" line. 'tern import' reads both back unchanged."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	format := fs.String("format", "maildir", "output `format`: maildir or mbox")
	pos, code, done := e.parse(c, fs, args)
	if done {
		return code
	}
	if *format != "maildir" && *format != "mbox" {
		fmt.Fprintf(e.stderr, "%s: --format must be maildir or mbox\n", c.name)
		return exitUsage
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	err := e.withAccount(ctx, cfg, pos[0], func(acct store.Account) error {
		pr := e.progressPrinter("exported")
		st, err := delivery.Export(ctx, acct, pos[1], delivery.ExportOptions{Format: *format, Progress: pr.update})
		pr.done()
		fmt.Fprintf(e.stdout, "exported %d messages (%s) from %d mailboxes to %s in %s\n",
			st.Messages, formatSize(st.Bytes), st.Mailboxes, pos[1], pr.elapsed().Round(time.Millisecond))
		return err
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	return exitOK
}

// withAccount opens user's account on a store that signals a running
// server (so its IDLE sessions see imported mail).
func (e *env) withAccount(ctx context.Context, cfg *config.Config, user string, fn func(store.Account) error) error {
	st, closeN, err := openStoreNotifying(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		st.Close()
		closeN()
	}()
	acct, err := st.Account(ctx, user)
	if err != nil {
		if errors.Is(err, store.ErrNoSuchUser) {
			return fmt.Errorf("no user %q", user)
		}
		return err
	}
	defer acct.Close()
	return fn(acct)
}

// progress prints a progress line on standard error when it is a
// terminal: count, rate and (when the total is known) ETA.
type progress struct {
	w     io.Writer // nil: not a terminal
	verb  string
	start time.Time
	shown bool
}

func (e *env) progressPrinter(verb string) *progress {
	p := &progress{verb: verb, start: time.Now()}
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.w = f
	}
	return p
}

func (p *progress) elapsed() time.Duration { return time.Since(p.start) }

func (p *progress) update(pr delivery.Progress) {
	if p.w == nil || pr.Elapsed <= 0 {
		return
	}
	rate := float64(pr.Messages) / pr.Elapsed.Seconds()
	line := fmt.Sprintf("%s %d", p.verb, pr.Messages)
	var frac float64 = -1
	switch {
	case pr.Total > 0:
		line += fmt.Sprintf("/%d messages", pr.Total)
		frac = float64(pr.Messages) / float64(pr.Total)
	case pr.TotalBytes > 0:
		line += " messages"
		frac = float64(pr.Bytes) / float64(pr.TotalBytes)
	default:
		line += " messages"
	}
	line += fmt.Sprintf(", %.0f/s", rate)
	if frac > 0 && frac < 1 {
		eta := time.Duration(float64(pr.Elapsed) * (1 - frac) / frac)
		line += fmt.Sprintf(", %3.0f%%, ETA %s", frac*100, eta.Round(time.Second))
	}
	fmt.Fprintf(p.w, "\r%-70s", line)
	p.shown = true
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 70))
	}
}
