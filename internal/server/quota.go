package server

import (
	"context"

	"github.com/tern-imap/tern/imap"
)

// QUOTA (RFC 9208). Each user has one quota root, "", covering all of
// their mailboxes, with the resources STORAGE (in units of 1024 octets)
// and MESSAGE. Limits are set by the administrator (tern user quota); the
// store enforces them atomically, and APPEND/COPY answer NO [OVERQUOTA]
// (mapped in storeErr). SETQUOTA is not offered (no QUOTASET).

const quotaCapabilities = " QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"

// quotaRoot is the name of every user's single quota root.
const quotaRoot = ""

func cmdGetQuota(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.QuotaArgs)
	if args.Root != quotaRoot {
		return no("NONEXISTENT", "No such quota root")
	}
	return c.writeQuota(ctx)
}

func cmdGetQuotaRoot(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.QuotaRootArgs)
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	mi, err := c.acct.Mailbox(ctx, name)
	if err != nil {
		return storeErr(err, name)
	}
	c.w.WriteString("* QUOTAROOT ")
	c.w.AString(c.wireName(mi.Name))
	c.w.SP()
	c.w.AString(quotaRoot)
	c.w.CRLF()
	return c.writeQuota(ctx)
}

// writeQuota writes the QUOTA response of the user's root, listing the
// resources that have a limit.
func (c *conn) writeQuota(ctx context.Context) error {
	q, err := c.acct.Quota(ctx)
	if err != nil {
		return storeErr(err, "")
	}
	c.w.WriteString("* QUOTA ")
	c.w.AString(quotaRoot)
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
