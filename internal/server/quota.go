package server

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// QUOTA (RFC 9208). Each user has one quota root covering all of their
// mailboxes, with the resources STORAGE (in units of 1024 octets) and
// MESSAGE. A session calls its own root "" and another user's
// "Other Users/<owner>", the root of the mailboxes that user shared
// (acl.go): a shared mailbox counts against its owner's quota. The store
// enforces limits atomically, and APPEND/COPY answer NO [OVERQUOTA]
// (mapped in storeErr). Limits are set by `tern user quota` or, with
// QUOTASET, by SETQUOTA from a user listed in Config.Admins.

const quotaCapabilities = " QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE QUOTASET"

// quotaRoot is the name of the session user's own quota root.
const quotaRoot = ""

// quotaRootOf names owner's quota root as the session sees it.
func (c *conn) quotaRootOf(owner string) string {
	switch owner {
	case c.user:
		return quotaRoot
	case store.SharedOwner:
		return sharedFolders
	}
	return otherUsers + store.Separator + owner
}

// quotaAccount returns the account of a quota root. The root of another
// user exists for the session only if it is an administrator or that
// user shared a mailbox the session can see.
func (c *conn) quotaAccount(ctx context.Context, root string) (store.Account, error) {
	if root == quotaRoot {
		return c.acct, nil
	}
	owner, rest, ok := splitShared(root)
	if !ok || owner == "" || rest != "" || strings.HasSuffix(root, store.Separator) || owner == c.user {
		return nil, no("NONEXISTENT", "No such quota root")
	}
	if !c.isAdmin() {
		seen, err := c.seesMailboxOf(ctx, owner)
		if err != nil {
			return nil, err
		}
		if !seen {
			return nil, no("NONEXISTENT", "No such quota root")
		}
	}
	a, err := c.otherAccount(ctx, owner)
	if err != nil {
		if isNoMailbox(err) {
			return nil, no("NONEXISTENT", "No such quota root")
		}
		return nil, err
	}
	return a, nil
}

// isAdmin reports whether the session's user may set quotas.
func (c *conn) isAdmin() bool {
	return slices.Contains(c.srv.cfg.Admins, c.user)
}

func cmdGetQuota(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.QuotaArgs)
	acct, err := c.quotaAccount(ctx, args.Root)
	if err != nil {
		return err
	}
	return c.writeQuota(ctx, acct, args.Root)
}

func cmdGetQuotaRoot(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.QuotaRootArgs)
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	m, _, err := c.resolveExisting(ctx, name)
	if err != nil {
		return storeErr(err, name)
	}
	root := c.quotaRootOf(m.owner)
	c.w.WriteString("* QUOTAROOT ")
	c.w.AString(c.wireName(m.view))
	c.w.SP()
	c.w.AString(c.wireName(root))
	c.w.CRLF()
	return c.writeQuota(ctx, m.acct, root)
}

// cmdSetQuota handles SETQUOTA (RFC 9208 §4.1.3): only users listed in
// Config.Admins may set limits, of any user's root; everyone else gets NO
// [NOPERM]. Resources left out lose their limit; a limit of 0 is taken
// as "no limit" like the store's.
func cmdSetQuota(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.SetQuotaArgs)
	if !c.isAdmin() {
		return no("NOPERM", "Only administrators may set quotas")
	}
	var storage, messages int64
	for _, r := range args.Resources {
		switch r.Resource {
		case "STORAGE":
			if r.Limit > math.MaxInt64/1024 {
				return bad("", "STORAGE limit too large")
			}
			storage = int64(r.Limit) * 1024
		case "MESSAGE":
			messages = int64(r.Limit)
		default:
			return no("CANNOT", "Unsupported quota resource "+r.Resource)
		}
	}
	root, err := c.mailboxName(args.Root)
	if err != nil {
		return err
	}
	acct, err := c.quotaAccount(ctx, root)
	if err != nil {
		return err
	}
	if err := acct.SetQuota(ctx, storage, messages); err != nil {
		return fmt.Errorf("set quota of %q: %w", acct.User(), err)
	}
	c.log.Info("quota set", "of", acct.User(), "storage", storage, "messages", messages)
	return c.writeQuota(ctx, acct, root)
}

// writeQuota writes the QUOTA response of root (acct's), listing the
// resources that have a limit.
func (c *conn) writeQuota(ctx context.Context, acct store.Account, root string) error {
	q, err := acct.Quota(ctx)
	if err != nil {
		return storeErr(err, "")
	}
	c.w.WriteString("* QUOTA ")
	c.w.AString(c.wireName(root))
	c.w.WriteString(" (")
	sep := ""
	if q.StorageLimit > 0 {
		c.w.WriteString("STORAGE ")
		c.w.Number(uint64(kib(q.StorageUsed)))
		c.w.SP()
		c.w.Number(uint64(q.StorageLimit / 1024))
		sep = " "
	}
	if q.MessageLimit > 0 {
		c.w.WriteString(sep)
		c.w.WriteString("MESSAGE ")
		c.w.Number(uint64(q.MessagesUsed))
		c.w.SP()
		c.w.Number(uint64(q.MessageLimit))
	}
	c.w.WriteString(")\r\n")
	return nil
}

// kib rounds a byte count up to units of 1024 octets.
func kib(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return (n + 1023) / 1024
}
