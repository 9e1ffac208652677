package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// METADATA (RFC 5464) and LIST-METADATA (RFC 9590). Annotations live in
// the store (store.Account.GetMetadata/SetMetadata), which checks entry
// names, the limits and the mailbox. METADATA covers server and mailbox
// entries, so METADATA-SERVER is not advertised on its own (RFC 5464 §1).
//
// Private and shared: both are kept per mailbox in the owner's store, and
// the server entries ("") per user; /private/ entries of a mailbox are
// its owner's. On another user's mailbox (RFC 5464 §3.3 with ACL) a user
// needs "l" and one of "r", "s", "w", "i", "p" to read or write entries,
// and "w" to write /shared/ ones; the owner's /private/ entries are not
// theirs: they read as absent, and setting a /private/ entry there is
// NO [METADATA NOPRIVATE] (tern keeps no per-user private annotations on
// shared mailboxes).

const metadataCapabilities = " METADATA LIST-METADATA"

func cmdGetMetadata(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.GetMetadataArgs)
	mailbox, err := c.metadataMailbox(args.Mailbox)
	if err != nil {
		return err
	}
	entries, err := metadataEntries(args.Entries)
	if err != nil {
		return err
	}
	longest, err := c.writeMetadata(ctx, mailbox, entries, &args.MetadataOptions)
	if err != nil {
		return err
	}
	return c.okLongEntries(ctx, longest, "GETMETADATA completed")
}

func cmdSetMetadata(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.SetMetadataArgs)
	mailbox, err := c.metadataMailbox(args.Mailbox)
	if err != nil {
		return err
	}
	m, err := c.metadataTarget(ctx, mailbox)
	if err != nil {
		return err
	}
	set := make([]store.MetadataEntry, 0, len(args.Entries))
	for _, e := range args.Entries {
		n, err := store.NormMetadataEntry(e.Name)
		if err != nil || n == "/private" || n == "/shared" {
			return bad("", "Invalid entry name")
		}
		if serverPrivateEntry(n) {
			return no("NOPERM", "This entry is reserved for the server")
		}
		if len(e.Value) > store.MetadataMaxValueSize {
			return no(fmt.Sprintf("METADATA MAXSIZE %d", store.MetadataMaxValueSize), "Value too large")
		}
		if !m.own(c) {
			if strings.HasPrefix(n, "/private/") {
				return no("METADATA NOPRIVATE", "No private annotations on another user's mailbox")
			}
			if err := m.need("w"); err != nil {
				return err
			}
		}
		set = append(set, store.MetadataEntry{Name: n, Value: e.Value})
	}
	err = m.acct.SetMetadata(ctx, m.name, set)
	c.imapSieveChanged(m.acct) // even after an error: part may have been written
	if err != nil {
		return metadataErr(err, mailbox)
	}
	return nil
}

// metadataTarget resolves the mailbox of GETMETADATA/SETMETADATA (""
// being the server) and checks the rights RFC 5464 §3.3 asks for on
// another user's mailbox: "l" and one of "r", "s", "w", "i", "p".
func (c *conn) metadataTarget(ctx context.Context, mailbox string) (*mailboxRef, error) {
	if mailbox == "" {
		return &mailboxRef{acct: c.acct, owner: c.user, rights: ownerRights}, nil
	}
	m, _, err := c.resolveExisting(ctx, mailbox)
	if err != nil {
		return nil, metadataErr(err, mailbox)
	}
	if !m.has('l') || !strings.ContainsAny(m.rights, "rswip") {
		return nil, no("NOPERM", "Permission denied")
	}
	return m, nil
}

// metadataMailbox decodes the mailbox argument; "" names the server.
func (c *conn) metadataMailbox(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	return c.mailboxName(raw)
}

// metadataEntries checks and lower-cases requested entry names, each once.
func metadataEntries(raw []string) ([]string, error) {
	out := make([]string, 0, len(raw))
	seen := make(map[string]bool, len(raw))
	for _, r := range raw {
		n, err := store.NormMetadataEntry(r)
		if err != nil {
			return nil, bad("", "Invalid entry name")
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// listMetadataEntries checks the entries of LIST RETURN (METADATA ...);
// nil without that option.
func listMetadataEntries(m *imap.ListMetadata) ([]string, error) {
	if m == nil {
		return nil, nil
	}
	return metadataEntries(m.Entries)
}

// listMetadata writes the METADATA response of one listed mailbox (RFC
// 9590: right after its LIST response; \Noselect parents get none, as in
// Cyrus, where RFC 9590 comes from). A mailbox deleted meanwhile is
// skipped. It returns the largest value MAXSIZE left out.
func (c *conn) listMetadata(ctx context.Context, name string, entries []string, m *imap.ListMetadata) (int, error) {
	n, err := c.writeMetadata(ctx, name, entries, &m.MetadataOptions)
	var re *respError
	if err != nil && !errors.As(err, &re) {
		return 0, err
	}
	return n, nil
}

// metadataErr maps a storage error of GETMETADATA/SETMETADATA.
func metadataErr(err error, mailbox string) error {
	var tl *store.MetadataTooLargeError
	switch {
	case errors.As(err, &tl):
		return no(fmt.Sprintf("METADATA MAXSIZE %d", tl.Max), "Value too large")
	case errors.Is(err, store.ErrMetadataTooMany):
		return no("METADATA TOOMANY", "Too many annotations")
	case errors.Is(err, store.ErrInvalidMetadataEntry):
		return bad("", "Invalid entry name")
	}
	return storeErr(err, mailbox)
}

func depthOf(d string) store.MetadataDepth {
	switch d {
	case "1":
		return store.MetadataDepth1
	case "INFINITY":
		return store.MetadataDepthInfinity
	}
	return store.MetadataDepth0
}

// okLongEntries ends a command with OK [METADATA LONGENTRIES n] when
// MAXSIZE left out values (n is the largest of them), else plain OK.
func (c *conn) okLongEntries(ctx context.Context, longest int, text string) error {
	if longest == 0 {
		return nil
	}
	return c.okCode(ctx, fmt.Sprintf("METADATA LONGENTRIES %d", longest), text)
}

// writeMetadata writes one METADATA response with the requested entries
// of mailbox: the stored values (down to the depth), NIL for a requested
// entry without a value (DEPTH 0 only), and none for values over MAXSIZE. It returns
// the size of the largest value left out (0 if none). Nothing is
// written when nothing is left to send.
func (c *conn) writeMetadata(ctx context.Context, mailbox string, entries []string, o *imap.MetadataOptions) (longest int, err error) {
	m, err := c.metadataTarget(ctx, mailbox)
	if err != nil {
		return 0, err
	}
	got, err := m.acct.GetMetadata(ctx, m.name, entries, depthOf(o.Depth))
	if err != nil {
		return 0, metadataErr(err, mailbox)
	}
	if !m.own(c) { // the owner's private entries are not the session's
		got = slices.DeleteFunc(got, func(e store.MetadataEntry) bool { return strings.HasPrefix(e.Name, "/private/") })
	}
	got = withoutServerPrivate(got) // URLAUTH keys (urlauth.go)
	if o.Depth == "0" {
		// NIL for what has no value. With DEPTH only what exists is
		// listed (RFC 5464 §4.2.2's example).
		have := make(map[string]bool, len(got))
		for _, e := range got {
			have[e.Name] = true
		}
		for _, n := range entries {
			if !have[n] && n != "/private" && n != "/shared" { // a namespace has no value of its own
				got = append(got, store.MetadataEntry{Name: n})
			}
		}
	}
	slices.SortFunc(got, func(a, b store.MetadataEntry) int { return strings.Compare(a.Name, b.Name) })
	sent := got[:0]
	for _, e := range got {
		if o.HasMaxSize && len(e.Value) > int(o.MaxSize) {
			longest = max(longest, len(e.Value))
			continue
		}
		sent = append(sent, e)
	}
	if len(sent) == 0 {
		return longest, nil
	}
	c.w.WriteString("* METADATA ")
	c.w.AString(c.wireName(mailbox))
	c.w.WriteString(" (")
	for i, e := range sent {
		if i > 0 {
			c.w.SP()
		}
		c.w.AString(e.Name)
		c.w.SP()
		c.writeMetadataValue(e.Value)
	}
	c.w.WriteString(")\r\n")
	return longest, nil
}

// writeMetadataValue writes NIL, a string, or a literal8 for a value with
// NUL bytes (RFC 5464 §5 value = nstring / literal8; BINARY is offered).
func (c *conn) writeMetadataValue(v []byte) {
	switch {
	case v == nil:
		c.w.WriteString("NIL")
	case bytes.IndexByte(v, 0) >= 0:
		c.w.LiteralHeader(int64(len(v)), true)
		c.w.Write(v)
	default:
		c.w.String(string(v))
	}
}
