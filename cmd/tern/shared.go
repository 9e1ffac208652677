package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
)

const sharedUsage = `Usage: tern shared COMMAND [flags]

Manage the shared folders: mailboxes of no user, which IMAP clients see
as "Shared Folders/NAME" when an ACL lets them (NAMESPACE's third
element). They are kept in the account ` + store.SharedOwner + `, which no one logs in to.

Commands:
  create NAME   create a shared folder (and its missing parents)
  delete NAME   delete a shared folder and its messages
  list          list the shared folders with their access control lists
  share NAME IDENTIFIER RIGHTS
                give IDENTIFIER (a user or anyone) RIGHTS (lrswipkxtea, +/-, none)
  acl NAME      show who may use shared folder NAME

A new folder inherits its parent's ACL; a folder at the top starts with an
empty one (no one but administrators through these commands sees it).
Run "tern shared COMMAND -h" for flags.
`

func (e *env) shared(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, sharedUsage)
		return exitUsage
	}
	var c command
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, sharedUsage)
		return exitOK
	case "share":
		return e.share(command{name: "tern shared share", args: "NAME IDENTIFIER RIGHTS", nargs: 3,
			about: "Give IDENTIFIER (a user name, or anyone) RIGHTS on shared folder NAME: letters of\n" +
				"lrswipkxtea, +RIGHTS to add, -RIGHTS to remove, none to remove the entry."}, args[1:], true, store.SharedOwner)
	case "acl":
		return e.share(command{name: "tern shared acl", args: "NAME", nargs: 1,
			about: "Show the access control list of shared folder NAME."}, args[1:], false, store.SharedOwner)
	case "create":
		c = command{name: "tern shared create", args: "NAME", nargs: 1,
			about: "Create shared folder NAME (\"Shared Folders/NAME\" to IMAP clients) and its\nmissing parents."}
	case "delete":
		c = command{name: "tern shared delete", args: "NAME", nargs: 1,
			about: "Delete shared folder NAME and its messages. This cannot be undone."}
	case "list":
		c = command{name: "tern shared list", about: "List the shared folders and their access control lists."}
	default:
		fmt.Fprintf(e.stderr, "tern shared: unknown command %q\n\n%s", args[0], sharedUsage)
		return exitUsage
	}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	pos, code, done := e.parse(c, fs, args[1:])
	if done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	err := e.withStore(ctx, cfg, func(st store.Store) error {
		acct, err := sharedAccount(ctx, st, args[0] == "create")
		if err != nil {
			return err
		}
		defer acct.Close()
		switch args[0] {
		case "create":
			return acct.CreateMailbox(ctx, pos[0], "")
		case "delete":
			return acct.DeleteMailbox(ctx, pos[0])
		}
		return e.listShared(ctx, acct)
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	return exitOK
}

// sharedAccount opens the account of the shared folders, creating it
// (without a password: no one logs in to it) when create is set.
func sharedAccount(ctx context.Context, st store.Store, create bool) (store.Account, error) {
	if create {
		if err := st.CreateUser(ctx, store.SharedOwner, ""); err != nil && !errors.Is(err, store.ErrUserExists) {
			return nil, fmt.Errorf("create the shared folders' account: %w", err)
		}
	}
	acct, err := st.Account(ctx, store.SharedOwner)
	if errors.Is(err, store.ErrNoSuchUser) {
		return nil, errors.New("no shared folders yet (tern shared create NAME)")
	}
	return acct, err
}

// listShared prints each shared folder (INBOX, which every account has,
// left out) with its ACL.
func (e *env) listShared(ctx context.Context, acct store.Account) error {
	boxes, err := acct.Mailboxes(ctx)
	if err != nil {
		return err
	}
	for _, b := range boxes {
		if b.Name == "INBOX" {
			continue
		}
		acl, err := acct.ACL(ctx, b.Name)
		if err != nil {
			return err
		}
		var entries []string
		for _, en := range acl {
			entries = append(entries, en.Identifier+" "+en.Rights)
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", b.Name, strings.Join(entries, ", "))
	}
	return nil
}
