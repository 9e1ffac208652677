package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/sorted"
	"github.com/tern-imap/tern/internal/store"
)

func cmdSearch(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.SearchArgs)
	sel := c.sel
	var retMin, retMax, retCount, retAll, retSave, retRelevancy bool
	for _, r := range args.Return {
		switch r {
		case "MIN":
			retMin = true
		case "MAX":
			retMax = true
		case "COUNT":
			retCount = true
		case "ALL":
			retAll = true
		case "SAVE":
			retSave = true
		case "RELEVANCY":
			retRelevancy = true
		case "UPDATE", "CONTEXT", "PARTIAL": // RFC 5267, context.go
		default:
			return bad("", "Unknown SEARCH return option "+r)
		}
	}
	if retRelevancy && !search.UsesFuzzy(args.Key) {
		return bad("", "RELEVANCY needs a FUZZY search key (RFC 6203)")
	}
	esearch := args.HasReturn || c.rev2
	if esearch && !retMin && !retMax && !retCount && !retAll && !retSave && !retRelevancy && !contextSuppressesAll(args.Return) {
		retAll = true // RETURN () means ALL
	}
	usesModSeq := search.UsesModSeq(args.Key)
	if usesModSeq {
		c.enableCondstore()
	}
	matched, modseqs, scores, err := c.searchScored(ctx, args.Key)
	if err != nil {
		if retSave {
			sel.saved = nil
		}
		return err
	}
	if retSave {
		switch {
		case retAll || retCount || (!retMin && !retMax):
			sel.saved = slices.Clone(matched)
		default:
			sel.saved = nil
			if len(matched) > 0 {
				if retMin {
					sel.saved = append(sel.saved, matched[0])
				}
				if retMax && (!retMin || len(matched) > 1) {
					sel.saved = append(sel.saved, matched[len(matched)-1])
				}
			}
		}
	}
	// Results are UIDs for UID SEARCH, sequence numbers otherwise.
	nums := matched
	if !cmd.UID {
		nums = make([]uint32, len(matched))
		for i, u := range matched {
			nums[i], _ = sel.seqOf(u)
		}
	}
	if !esearch {
		c.w.WriteString("* SEARCH")
		for _, n := range nums {
			c.w.SP()
			c.w.Number32(n)
		}
		if usesModSeq && len(nums) > 0 {
			// RFC 7162 §3.1.5: the highest mod-sequence of the matches.
			c.w.WriteString(" (MODSEQ ")
			c.w.Number(slices.Max(modseqs))
			c.w.WriteByte(')')
		}
		c.w.CRLF()
		return nil
	}
	if retSave && !retMin && !retMax && !retCount && !retAll && !retRelevancy && args.Partial == nil {
		return nil // SAVE alone: no ESEARCH response (RFC 5182 §2.4)
	}
	c.writeESearchHead(cmd, nums, retMin, retMax, retCount)
	if retAll && len(nums) > 0 {
		c.w.WriteString(" ALL ")
		c.w.WriteString(imap.SetFromNums(nums).String())
	}
	c.writePartialResult(args.Partial, nums, false)
	if retRelevancy {
		writeRelevancy(c, relevancyFor(args.Partial, retAll, scores))
	}
	if usesModSeq && len(nums) > 0 {
		// RFC 4731 §3.2 with RFC 7162: the highest mod-sequence of the
		// messages the returned data describes (only MIN/MAX when just
		// those were asked for).
		var ms uint64
		if retAll || retCount {
			ms = slices.Max(modseqs)
		} else {
			if retMin {
				ms = modseqs[0]
			}
			if retMax {
				ms = max(ms, modseqs[len(modseqs)-1])
			}
		}
		c.w.WriteString(" MODSEQ ")
		c.w.Number(ms)
	}
	c.w.CRLF()
	c.addContext(cmd, args.Return, args.Key, nil, matched)
	return nil
}

// searchUIDs evaluates key over the messages in view and returns the UIDs
// of those that match, ascending.
// The second result holds each match's modseq (filled when the key uses
// MODSEQ).
func (c *conn) searchUIDs(ctx context.Context, key *imap.SearchKey) ([]uint32, []uint64, error) {
	uids, modseqs, _, err := c.searchScored(ctx, key)
	return uids, modseqs, err
}

// searchScored is searchUIDs that also returns each match's RFC 6203
// relevancy (100 for every match of a key without FUZZY).
func (c *conn) searchScored(ctx context.Context, key *imap.SearchKey) ([]uint32, []uint64, []uint8, error) {
	return c.searchAmong(ctx, key, c.sel.uids)
}

// minIndexed is how many messages a search must cover to ask the
// full-text index (which answers for the whole mailbox); fewer are read.
const minIndexed = 64

// searchAmong is searchScored over the messages in (ascending UIDs of
// the view; the whole view or, for live results, the messages that
// changed).
func (c *conn) searchAmong(ctx context.Context, key *imap.SearchKey, in []uint32) ([]uint32, []uint64, []uint8, error) {
	sel := c.sel
	if len(sel.uids) == 0 || len(in) == 0 {
		return nil, nil, nil, nil
	}
	now := time.Now()
	if search.FlagsOnly(key) {
		matched, modseqs, err := c.matchFlags(ctx, key, in, now)
		if !errors.Is(err, store.ErrNoFlagMatch) {
			return matched, modseqs, fullRelevancy(len(matched)), err
		}
	}
	var modseqs []uint64
	var scores []uint8
	want := search.Want(key)
	needBody := search.NeedsBody(key)

	var matched, decided []uint32
	byIndex := false // decided holds the index's answer for all but uids
	maxSeq := uint32(len(sel.uids))
	maxUID := sel.uids[len(sel.uids)-1]
	cand := &search.Candidate{MaxSeq: maxSeq, MaxUID: maxUID, Saved: sel.saved}
	if needBody {
		c.setOpener(ctx, sel.acct, sel.info.ID, cand)
	}
	uids := in
	if needBody && !c.srv.cfg.ScanSearch && (len(in) >= minIndexed || len(in) == len(sel.uids)) {
		if x := c.textIndex(ctx, sel.acct, sel.info.ID, sel.info.Name, key); x != nil {
			cand.Text = x
			if !x.NeedsHeader(key) {
				want &^= store.WantHeader
			}
			if hits, read, ok := x.Decided(key, uids); ok {
				// The index answers every indexed message: only those it
				// has not covered yet are read and matched below.
				decided, uids, byIndex = hits, read, true
				if len(uids) == 0 {
					return decided, nil, fullRelevancy(len(decided)), nil
				}
			} else if uids = x.Restrict(key, uids); len(uids) == 0 {
				return nil, nil, nil, nil
			}
		}
	}
	view := sel.cursor() // Fetch calls back in ascending UID order
	// INPROGRESS (progress.go): the clock is read for every message when
	// bodies are searched, every 256 otherwise.
	prog := c.startProgress(len(uids))
	err := sel.acct.Fetch(ctx, sel.info.ID, uids, want, func(m *store.Message) error {
		// A message the index decides is cheap: no clock read for it.
		if err := prog.step(needBody && (cand.Text == nil || cand.Text.Pending(m.UID))); err != nil {
			return err
		}
		seq, ok := view.seq(m.UID)
		if !ok {
			return nil
		}
		cand.SeqNum = seq
		cand.Msg = m
		cand.Recent = view.isRecent(m.UID)
		ok, err := search.Match(key, cand, now)
		if err != nil {
			cand.Release()
			return err
		}
		if ok {
			matched = append(matched, m.UID)
			modseqs = append(modseqs, m.ModSeq)
			scores = append(scores, cand.Relevancy())
		}
		return cand.Release()
	})
	if err != nil {
		var re *respError
		if errors.As(err, &re) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, fmt.Errorf("search in %q: %w", sel.info.Name, err)
	}
	if byIndex {
		// No FUZZY (relevancy 100) and no MODSEQ (no modseqs) in key.
		matched = sorted.Union(decided, matched)
		return matched, nil, fullRelevancy(len(matched)), nil
	}
	return matched, modseqs, scores, nil
}

// matchFlags answers a key on flags alone (search.FlagsOnly) from the
// mailbox index, which evaluates it once per distinct flag list
// (store.FlagMatcher); store.ErrNoFlagMatch when the account cannot (no
// index, or a shared mailbox whose \Seen is per user).
func (c *conn) matchFlags(ctx context.Context, key *imap.SearchKey, in []uint32, now time.Time) ([]uint32, []uint64, error) {
	sel := c.sel
	fm, ok := sel.acct.(store.FlagMatcher)
	if !ok {
		return nil, nil, store.ErrNoFlagMatch
	}
	cand := &search.Candidate{MaxSeq: uint32(len(sel.uids)), MaxUID: sel.uids[len(sel.uids)-1], Saved: sel.saved}
	var matchErr error
	matched, modseqs, err := fm.MatchFlags(ctx, sel.info.ID, in, func(flags []string) bool {
		cand.Msg = &store.Message{Flags: flags}
		ok, err := search.Match(key, cand, now)
		if err != nil && matchErr == nil {
			matchErr = err
		}
		return ok
	})
	if err == nil {
		err = matchErr
	}
	if err != nil && !errors.Is(err, store.ErrNoFlagMatch) {
		return nil, nil, fmt.Errorf("search in %q: %w", sel.info.Name, err)
	}
	return matched, modseqs, err
}

// fullRelevancy is the relevancy of n matches of a search without fuzzy
// keys: 100 each (RFC 6203 §4).
func fullRelevancy(n int) []uint8 {
	s := make([]uint8, n)
	for i := range s {
		s[i] = 100
	}
	return s
}

// setOpener lets cand open the message it holds, in mailbox id of acct
// (a shared mailbox's owner's account).
func (c *conn) setOpener(ctx context.Context, acct store.Account, id int64, cand *search.Candidate) {
	cand.Open = func() (io.ReaderAt, *message.Part, error) {
		b, err := acct.OpenBody(ctx, id, cand.Msg.UID)
		if err != nil {
			return nil, nil, err
		}
		root, err := message.DecodeParts(b.Parts())
		if err != nil {
			b.Close()
			return nil, nil, err
		}
		return b, root, nil
	}
}

// textIndex asks the full-text index of acct (a shared mailbox's is its
// owner's) about the text keys of key in mailbox id (name for the log);
// nil means scan (no index, or it failed: the scan is always right).
func (c *conn) textIndex(ctx context.Context, acct store.Account, id int64, name string, key *imap.SearchKey) *search.TextIndex {
	leaves := search.TextLeaves(key)
	if len(leaves) == 0 {
		return nil
	}
	qs := search.TextQueries(key, leaves)
	res, err := acct.SearchText(ctx, id, qs)
	if err != nil {
		if !errors.Is(err, store.ErrNoTextIndex) && ctx.Err() == nil {
			c.log.Warn("search: full-text index failed; scanning", "mailbox", name, "err", err)
		}
		return nil
	}
	return search.NewTextIndex(leaves, qs, res)
}

// writeESearchHead starts an ESEARCH response (SEARCH and SORT RETURN):
// the tag correlator, UID, and MIN/MAX/COUNT of nums, which are in the
// order the command returns them (ascending for SEARCH, sort order for
// SORT: MIN and MAX are then the first and last, RFC 5267 §3).
func (c *conn) writeESearchHead(cmd *imap.Command, nums []uint32, retMin, retMax, retCount bool) {
	c.w.WriteString(`* ESEARCH (TAG `)
	c.w.String(cmd.Tag)
	c.w.WriteByte(')')
	if cmd.UID {
		c.w.WriteString(" UID")
	}
	if len(nums) > 0 {
		if retMin {
			c.w.WriteString(" MIN ")
			c.w.Number32(nums[0])
		}
		if retMax {
			c.w.WriteString(" MAX ")
			c.w.Number32(nums[len(nums)-1])
		}
	}
	if retCount {
		c.w.WriteString(" COUNT ")
		c.w.Number(uint64(len(nums)))
	}
}

// relevancyFor returns the scores RELEVANCY reports (RFC 6203 §4): those
// of the messages ALL returns, else of the PARTIAL window, else of every
// match; in the order of the returned messages.
func relevancyFor(p *imap.PartialRange, all bool, scores []uint8) []uint8 {
	if p != nil && !all {
		return partialWindow(p, scores)
	}
	return scores
}

// writeRelevancy writes " RELEVANCY (s ...)".
func writeRelevancy(c *conn, scores []uint8) {
	c.w.WriteString(" RELEVANCY (")
	for i, s := range scores {
		if i > 0 {
			c.w.SP()
		}
		c.w.Number(uint64(s))
	}
	c.w.WriteByte(')')
}
