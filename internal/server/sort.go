package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/search"
	msgsort "github.com/tern-imap/tern/internal/sort"
	"github.com/tern-imap/tern/internal/store"
)

// sortCapabilities are the SORT/THREAD capabilities (RFC 5256, RFC 5957,
// RFC 5267 ESORT).
const sortCapabilities = " SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES ESORT"

// cmdSort is [UID] SORT [RETURN (...)] (criteria) charset search-keys.
func cmdSort(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.SortArgs)
	sel := c.sel
	crit := make([]msgsort.Criterion, len(args.Criteria))
	for i, a := range args.Criteria {
		k, ok := msgsort.ParseKey(a.Key)
		if !ok {
			return bad("", "Unknown sort key "+a.Key)
		}
		crit[i] = msgsort.Criterion{Key: k, Reverse: a.Reverse}
	}
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
			return bad("", "Unknown SORT return option "+r)
		}
	}
	if (retRelevancy || sortsByRelevancy(crit)) && !search.UsesFuzzy(args.Key) {
		return bad("", "RELEVANCY needs a FUZZY search key (RFC 6203)")
	}
	if args.HasReturn && !retMin && !retMax && !retCount && !retAll && !retSave && !retRelevancy && !contextSuppressesAll(args.Return) {
		retAll = true // RETURN () means ALL (RFC 4731 §3.1)
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
	uids, sorted, sortedScores, err := c.sortMatched(ctx, matched, scores, crit)
	if err != nil {
		return err
	}
	if retSave {
		// The saved result is a set (RFC 5182); with only MIN/MAX it
		// holds those messages.
		switch {
		case retAll || retCount || (!retMin && !retMax):
			sel.saved = slices.Clone(uids)
		default:
			var s []uint32
			if len(sorted) > 0 {
				if retMin {
					s = append(s, sorted[0])
				}
				if retMax {
					s = append(s, sorted[len(sorted)-1])
				}
			}
			slices.Sort(s)
			sel.saved = slices.Compact(s)
		}
	}
	nums := sorted
	if !cmd.UID {
		nums = make([]uint32, len(sorted))
		for i, u := range sorted {
			nums[i], _ = sel.seqOf(u)
		}
	}
	var highest uint64
	if usesModSeq && len(modseqs) > 0 {
		highest = slices.Max(modseqs)
	}
	if !args.HasReturn {
		c.w.WriteString("* SORT")
		for _, n := range nums {
			c.w.SP()
			c.w.Number32(n)
		}
		if highest > 0 {
			c.w.WriteString(" (MODSEQ ")
			c.w.Number(highest)
			c.w.WriteByte(')')
		}
		c.w.CRLF()
		return nil
	}
	if retSave && !retMin && !retMax && !retCount && !retAll && !retRelevancy && args.Partial == nil {
		return nil // SAVE alone: no ESEARCH response (RFC 5182 §2.4)
	}
	// ESORT (RFC 5267 §3): MIN and MAX are the first and last messages
	// in sort order; ALL lists the messages in sort order.
	c.writeESearchHead(cmd, nums, retMin, retMax, retCount)
	if retAll && len(nums) > 0 {
		c.w.WriteString(" ALL ")
		c.w.WriteString(imap.SetFromRuns(nums).String())
	}
	c.writePartialResult(args.Partial, nums, true)
	if retRelevancy {
		writeRelevancy(c, relevancyFor(args.Partial, retAll, sortedScores))
	}
	if highest > 0 {
		c.w.WriteString(" MODSEQ ")
		c.w.Number(highest)
	}
	c.w.CRLF()
	c.addContext(cmd, args.Return, args.Key, crit, sorted)
	return nil
}

// cmdThread is [UID] THREAD algorithm charset search-keys.
func cmdThread(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.ThreadArgs)
	sel := c.sel
	if search.UsesModSeq(args.Key) {
		c.enableCondstore()
	}
	matched, _, err := c.searchUIDs(ctx, args.Key)
	if err != nil {
		return err
	}
	want := store.WantDates | store.WantEnvelope | store.WantRepeated | store.WantSubjectOnly
	if args.Algorithm == "REFERENCES" {
		want |= store.WantThreading
	}
	uids, items, err := c.sortItems(ctx, matched, nil, want, false)
	if err != nil {
		return err
	}
	var threads []*msgsort.Thread
	switch args.Algorithm {
	case "ORDEREDSUBJECT":
		threads = msgsort.OrderedSubject(items)
	case "REFERENCES":
		threads = msgsort.References(items)
	default:
		return bad("", "Unknown threading algorithm")
	}
	num := func(i int) uint32 {
		if cmd.UID {
			return uids[i]
		}
		n, _ := sel.seqOf(uids[i])
		return n
	}
	c.w.WriteString("* THREAD")
	if len(threads) > 0 {
		c.w.SP()
		c.w.Write(msgsort.AppendThreads(nil, threads, num))
	}
	c.w.CRLF()
	return nil
}

// sortMatched orders the messages matched (ascending UIDs, with their
// relevancy scores, parallel; nil: none) by crit. It returns the UIDs
// that still exist, ascending (found), the same in crit's order (sorted)
// and their scores in that order. A sort by one number (DATE, ARRIVAL,
// SIZE, RELEVANCY) reads only that number of each message: no Items.
func (c *conn) sortMatched(ctx context.Context, matched []uint32, scores []uint8, crit []msgsort.Criterion) (found, sorted []uint32, sortedScores []uint8, err error) {
	want := store.WantDates | store.WantSize
	var order []int
	var rel []uint8 // relevancy, parallel to found
	if k, ok := msgsort.OneNumber(crit); ok {
		nums := make([]int64, 0, len(matched))
		rel = make([]uint8, 0, len(matched))
		found, err = c.fetchForSort(ctx, matched, scores, want, func(m *store.Message, score uint8) {
			nums = append(nums, msgsort.NumberOf(k.Key, m.InternalDate, m.SentDate, m.Size, score))
			rel = append(rel, score)
		})
		if err != nil {
			return nil, nil, nil, err
		}
		order = msgsort.SortNumbers(nums, k.Reverse)
	} else {
		if msgsort.NeedsEnvelope(crit) {
			want |= store.WantEnvelope | store.WantRepeated
		}
		var items []msgsort.Item
		if found, items, err = c.sortItems(ctx, matched, scores, want, true); err != nil {
			return nil, nil, nil, err
		}
		rel = make([]uint8, len(items))
		for i := range items {
			rel[i] = items[i].Relevancy
		}
		order = msgsort.Sort(items, crit)
	}
	sorted = make([]uint32, len(order))
	sortedScores = make([]uint8, len(order))
	for i, idx := range order {
		sorted[i] = found[idx]
		sortedScores[i] = rel[idx]
	}
	return found, sorted, sortedScores, nil
}

// sortItems fetches what sorting and threading need for the messages
// uids (ascending), with their relevancy from scores (parallel to uids;
// nil: none). Messages expunged meanwhile are left out: the UIDs
// returned match the items. Without keepEnvelope the items hold only the
// subject key of the ENVELOPE (all threading needs): a THREAD of a
// million messages then holds a million subjects, not envelopes.
func (c *conn) sortItems(ctx context.Context, uids []uint32, scores []uint8, want store.Want, keepEnvelope bool) ([]uint32, []msgsort.Item, error) {
	items := make([]msgsort.Item, 0, len(uids))
	found, err := c.fetchForSort(ctx, uids, scores, want, func(m *store.Message, score uint8) {
		items = append(items, msgsort.Item{
			InternalDate: m.InternalDate,
			SentDate:     m.SentDate,
			Size:         m.Size,
			Envelope:     m.Envelope,
			MessageID:    m.MessageID,
			InReplyTo:    m.InReplyTo,
			References:   m.References,
			Keys:         m.ThreadKeys,
			Subject:      m.BaseSubject,
			Relevancy:    score,
		})
		if it := &items[len(items)-1]; !keepEnvelope {
			if !it.Subject.Known {
				it.Subject = msgsort.EnvelopeSubject(it.Envelope)
			}
			it.Envelope = nil
		}
	})
	return found, items, err
}

// fetchForSort calls add with want's fields of each message of uids
// (ascending) that still exists, in that order, with its relevancy from
// scores (parallel to uids; nil: none), and returns their UIDs.
func (c *conn) fetchForSort(ctx context.Context, uids []uint32, scores []uint8, want store.Want, add func(m *store.Message, score uint8)) ([]uint32, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	sel := c.sel
	found := make([]uint32, 0, len(uids))
	next := 0 // index in uids of the message called back
	err := sel.acct.Fetch(ctx, sel.info.ID, uids, want, func(m *store.Message) error {
		found = append(found, m.UID)
		// Fetch calls back in ascending UID order, as uids are: walk
		// along them instead of searching (100,000 binary searches were
		// a tenth of THREAD's CPU).
		for next < len(uids) && uids[next] < m.UID {
			next++
		}
		var score uint8
		if next < len(uids) && uids[next] == m.UID && next < len(scores) {
			score = scores[next]
		}
		add(m, score)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sort in %q: %w", sel.info.Name, err)
	}
	return found, nil
}

// sortsByRelevancy reports whether crit holds the RELEVANCY key.
func sortsByRelevancy(crit []msgsort.Criterion) bool {
	return slices.ContainsFunc(crit, func(c msgsort.Criterion) bool { return c.Key == msgsort.Relevancy })
}
