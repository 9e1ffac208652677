package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
)

// cmdESearch is ESEARCH (RFC 7377 MULTISEARCH): the search runs in every
// mailbox the IN (...) sources name (the selected one without IN), and
// each mailbox with matches gets one ESEARCH response tagged with its
// name and UIDVALIDITY, its results always UIDs. Text keys come from the
// user's full-text index, as for SEARCH. Message sequence numbers and the
// saved result "$" mean nothing across mailboxes: BAD.
func cmdESearch(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.MultiSearchArgs)
	key := args.Search.Key
	if keyUsesSeqNumbers(key) || search.UsesSaved(key) {
		return bad("", "ESEARCH takes no message sequence numbers and no $")
	}
	var retMin, retMax, retCount, retAll bool
	for _, r := range args.Search.Return {
		switch r {
		case "MIN":
			retMin = true
		case "MAX":
			retMax = true
		case "COUNT":
			retCount = true
		case "ALL":
			retAll = true
		default:
			return bad("", "ESEARCH does not support RETURN "+r)
		}
	}
	if args.Search.Partial != nil {
		return bad("", "ESEARCH does not support RETURN PARTIAL")
	}
	if !retMin && !retMax && !retCount {
		retAll = true // RETURN () or none means ALL
	}
	mbs, err := c.searchSources(ctx, args.Sources)
	if err != nil {
		return err
	}
	if search.UsesModSeq(key) {
		c.enableCondstore()
	}
	for _, mb := range mbs {
		uids, err := c.searchMailbox(ctx, mb, key)
		if err != nil {
			return err
		}
		if len(uids) == 0 {
			continue
		}
		c.w.WriteString(`* ESEARCH (TAG `)
		c.w.String(cmd.Tag)
		c.w.WriteString(` MAILBOX `)
		c.w.String(c.wireName(mb.Name))
		c.w.WriteString(` UIDVALIDITY `)
		c.w.Number32(mb.UIDValidity)
		c.w.WriteString(`) UID`)
		if retMin {
			c.w.WriteString(" MIN ")
			c.w.Number32(uids[0])
		}
		if retMax {
			c.w.WriteString(" MAX ")
			c.w.Number32(uids[len(uids)-1])
		}
		if retCount {
			c.w.WriteString(" COUNT ")
			c.w.Number(uint64(len(uids)))
		}
		if retAll {
			c.w.WriteString(" ALL ")
			c.w.WriteString(imap.SetFromNums(uids).String())
		}
		c.w.CRLF()
	}
	return nil
}

// searchSources resolves ESEARCH's sources to selectable mailboxes, each
// once, in the order of the mailbox list.
func (c *conn) searchSources(ctx context.Context, srcs []imap.SearchSource) ([]store.MailboxInfo, error) {
	if len(srcs) == 0 {
		if c.sel == nil {
			return nil, bad("", "ESEARCH without IN needs a selected mailbox")
		}
		srcs = []imap.SearchSource{{Filter: "selected"}}
	}
	all, err := c.acct.Mailboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("esearch: list mailboxes: %w", err)
	}
	want := map[string]bool{}
	for _, s := range srcs {
		switch s.Filter {
		case "selected", "selected-delayed":
			if c.sel != nil {
				want[c.sel.info.Name] = true
			}
		case "inboxes":
			want["INBOX"] = true
		case "personal":
			for _, mb := range all {
				want[mb.Name] = true
			}
		case "subscribed":
			subs, err := c.acct.Subscriptions(ctx)
			if err != nil {
				return nil, fmt.Errorf("esearch: subscriptions: %w", err)
			}
			for _, n := range subs {
				want[n] = true
			}
		case "subtree", "subtree-one", "mailboxes":
			for _, raw := range s.Mailboxes {
				name, err := c.mailboxName(raw)
				if err != nil {
					continue // a name that cannot exist names nothing
				}
				want[name] = true
				if s.Filter == "mailboxes" {
					continue
				}
				for _, mb := range all {
					rest, ok := strings.CutPrefix(mb.Name, name+store.Separator)
					if ok && (s.Filter == "subtree" || !strings.Contains(rest, store.Separator)) {
						want[mb.Name] = true
					}
				}
			}
		}
	}
	var out []store.MailboxInfo
	for _, mb := range all {
		if want[mb.Name] && !mb.NoSelect {
			out = append(out, mb)
		}
	}
	return out, nil
}

// searchMailbox evaluates key over every message of mailbox mb and
// returns the matching UIDs, ascending. The messages count as not
// \Recent (this session has not selected them).
func (c *conn) searchMailbox(ctx context.Context, mb store.MailboxInfo, key *imap.SearchKey) ([]uint32, error) {
	_, uids, err := c.acct.Snapshot(ctx, mb.ID)
	if err != nil {
		return nil, fmt.Errorf("esearch in %q: %w", mb.Name, err)
	}
	if len(uids) == 0 {
		return nil, nil
	}
	want := search.Want(key)
	cand := &search.Candidate{MaxSeq: uint32(len(uids)), MaxUID: slices.Max(uids)}
	if search.NeedsBody(key) {
		c.setOpener(ctx, c.acct, mb.ID, cand)
		if !c.srv.cfg.ScanSearch {
			if x := c.textIndex(ctx, c.acct, mb.ID, mb.Name, key); x != nil {
				cand.Text = x
				uids = x.Restrict(key, uids)
				if !x.NeedsHeader(key) {
					want &^= store.WantHeader
				}
			}
		}
	}
	now := time.Now()
	var matched []uint32
	err = c.acct.Fetch(ctx, mb.ID, uids, want, func(m *store.Message) error {
		cand.Msg = m
		ok, err := search.Match(key, cand, now)
		if rerr := cand.Release(); err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
		if ok {
			matched = append(matched, m.UID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("esearch in %q: %w", mb.Name, err)
	}
	return matched, nil
}
