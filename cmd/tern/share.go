package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
)

// userShare is "tern user share OWNER MAILBOX IDENTIFIER RIGHTS": set an
// ACL entry (RFC 4314) on a user's mailbox as the owner would with
// SETACL, and print the mailbox's ACL. "tern user acl OWNER MAILBOX"
// (show) is the same with no change.
func (e *env) userShare(args []string, set bool) int {
	c := command{name: "tern user acl", args: "OWNER MAILBOX", nargs: 2,
		about: "Show the access control list of OWNER's MAILBOX (the owner always has all\nrights and is not listed)."}
	if set {
		c = command{name: "tern user share", args: "OWNER MAILBOX IDENTIFIER RIGHTS", nargs: 4,
			about: "Give IDENTIFIER (a user name, or anyone) RIGHTS on OWNER's MAILBOX, as the owner\n" +
				"would with SETACL (RFC 4314): letters of lrswipkxtea, +RIGHTS to add, -RIGHTS\n" +
				"to remove, none to remove the entry. The user sees the mailbox as\n" +
				"\"Other Users/OWNER/MAILBOX\"."}
	}
	return e.share(c, args, set, "")
}

// share runs userShare, or with owner set (store.SharedOwner) the same
// for "tern shared share|acl", whose positionals lack the owner.
func (e *env) share(c command, args []string, set bool, owner string) int {
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	pos, code, done := e.parse(c, fs, args)
	if done {
		return code
	}
	if owner != "" {
		pos = append([]string{owner}, pos...)
	}
	var op store.FlagOp
	var rights string
	if set {
		if err := store.ValidIdentifier(pos[2]); err != nil || pos[2] == pos[0] {
			fmt.Fprintf(e.stderr, "%s: invalid identifier %q (a user other than the owner, or anyone)\n", c.name, pos[2])
			return exitUsage
		}
		mod := pos[3]
		if mod == "none" {
			mod = ""
		}
		var err error
		if op, rights, err = store.ParseModRights(mod); err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
			return exitUsage
		}
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	err := e.withNotifyingStore(ctx, cfg, func(st store.Store) error {
		acct, err := st.Account(ctx, pos[0])
		if errors.Is(err, store.ErrNoSuchUser) {
			return fmt.Errorf("no user %q", pos[0])
		}
		if err != nil {
			return err
		}
		defer acct.Close()
		if set {
			if _, err := acct.SetACL(ctx, pos[1], pos[2], op, rights); err != nil {
				return err
			}
		}
		acl, err := acct.ACL(ctx, pos[1])
		if err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s: %s %s", pos[0], pos[1], pos[0], store.AllRights)
		for _, en := range acl {
			fmt.Fprintf(&b, ", %s %s", en.Identifier, en.Rights)
		}
		fmt.Fprintln(e.stdout, b.String())
		return nil
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	return exitOK
}
