package main

// The qresync workload (issue 3): is a QRESYNC resynchronisation of a big
// mailbox after a few changes O(changes)?
//
//	ternbench --messages N --duration 20m qresync-seed   fill INBOX of user 1 to N small (1-2 KiB) messages
//	ternbench --count R qresync                          R measured rounds
//
// Each round a second client changes the flags of qrFlagChanges messages
// and expunges qrExpunges others (spread over the mailbox); then the first
// client, which knows UIDVALIDITY and HIGHESTMODSEQ from before, sends
//
//	SELECT INBOX (QRESYNC (uidvalidity modseq))              "qresync"
//	SELECT INBOX (QRESYNC (uidvalidity modseq 1:<uidnext-1>)) "qresync-known"
//
// (in alternating order) and a plain client does the full resync,
// SELECT INBOX + UID FETCH 1:* (FLAGS) ("full-resync"). For each, the time
// from sending the command to the tagged OK and the bytes the server sent
// are recorded (and, as "plain-select", the SELECT part of the full
// resync alone: the floor any resync pays), and every QRESYNC answer is checked: its VANISHED
// (EARLIER) UIDs must be the expunged UIDs and its FETCH responses exactly
// the changed messages. A missing item is an error; extra items (which
// RFC 7162 allows) are counted in extra_vanished / extra_fetch.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	qrFlagChanges  = 10
	qrExpunges     = 10
	qrDefaultRound = 20
	qrSeedBatch    = 500
)

// qresyncWorkload runs "qresync-seed" or "qresync".
func qresyncWorkload(ctx context.Context, o *options, workload string, res *result) error {
	if workload == "qresync-seed" {
		return qresyncSeed(ctx, o, res)
	}
	return qresyncRun(ctx, o, res)
}

// qrConnect connects as user 0 and bounds the connection by ctx's deadline.
func qrConnect(ctx context.Context, o *options) (*client, error) {
	c, err := o.connect(ctx, 0)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(d)
	}
	return c, nil
}

// qresyncSeed tops user 1's INBOX up to o.messages small deterministic
// messages (MULTIAPPEND batches; LITERAL+ when offered). It stops early,
// without error, when o.duration has passed: total_messages tells how far
// it got (run it again to resume).
func qresyncSeed(ctx context.Context, o *options, res *result) error {
	c, err := qrConnect(ctx, o)
	if err != nil {
		return err
	}
	defer c.logout()
	si, err := c.selectMailbox("INBOX", true)
	if err != nil {
		return fmt.Errorf("examine INBOX: %w", err)
	}
	g := newGenerator(o.seed, 1000+uint64(o.firstUser))
	t0 := time.Now()
	var n, nbytes int64
	batch := make([][]byte, 0, qrSeedBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := c.appendMsgs("INBOX", "", batch...); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		n += int64(len(batch))
		if n%20000 < int64(len(batch)) {
			fmt.Fprintf(os.Stderr, "qresync-seed: %d messages (%.0f/s)\n", n, float64(n)/time.Since(t0).Seconds())
		}
		batch = batch[:0]
		return ctx.Err()
	}
	for k := 0; k < si.exists; k++ { // resume: skip what is there
		g.sized(1024 + g.r.IntN(1024))
	}
	deadline := t0.Add(o.duration)
	for k := si.exists; k < o.messages && time.Now().Before(deadline); k++ {
		m := g.sized(1024 + g.r.IntN(1024))
		batch = append(batch, m)
		nbytes += int64(len(m))
		if len(batch) == qrSeedBatch {
			if err = flush(); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = flush()
	}
	el := time.Since(t0)
	res.Seconds = el.Seconds()
	res.Primary, res.Value, res.HigherBetter = "messages/s", float64(n)/max(el.Seconds(), 1e-9), true
	res.Extra = map[string]float64{"messages": float64(n), "bytes": float64(nbytes), "total_messages": float64(si.exists) + float64(n)}
	return err
}

// qrSelect is what a SELECT reported.
type qrSelect struct {
	uidValidity uint32
	modseq      uint64
	uidNext     uint32
	exists      int
	vanished    []uint32 // VANISHED (EARLIER) UIDs, expanded
	fetched     []uint32 // UIDs of the FETCH responses
	fetches     int
}

// respCode returns the number in "[NAME n]" of an untagged OK.
func respCode(l []byte, name string) (uint64, bool) {
	i := bytes.Index(l, []byte("["+name+" "))
	if i < 0 {
		return 0, false
	}
	s := l[i+len(name)+2:]
	j := bytes.IndexByte(s, ']')
	if j <= 0 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s[:j]), 10, 64)
	return v, err == nil
}

// parseUIDSet expands a sequence set of UIDs, refusing more than limit.
func parseUIDSet(s string, limit int) ([]uint32, error) {
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err := strconv.ParseUint(a, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("uid set %q: %w", s, err)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(b, 10, 32); err != nil {
				return nil, fmt.Errorf("uid set %q: %w", s, err)
			}
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if int(hi-lo)+len(out) >= limit {
			return nil, fmt.Errorf("uid set %.60q: more than %d UIDs", s, limit)
		}
		for u := lo; u <= hi; u++ {
			out = append(out, uint32(u))
		}
	}
	return out, nil
}

// fetchUID returns the UID item of a FETCH response.
func fetchUID(l []byte) (uint32, bool) {
	for off := 0; ; {
		i := bytes.Index(l[off:], []byte("UID "))
		if i < 0 {
			return 0, false
		}
		i += off
		off = i + 4
		if i == 0 || (l[i-1] != '(' && l[i-1] != ' ') {
			continue
		}
		s := l[off:]
		j := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if v, err := strconv.ParseUint(string(s[:j]), 10, 32); err == nil {
			return uint32(v), true
		}
	}
}

// selectCmd sends a SELECT command line and parses its responses.
func (c *client) selectCmd(line string, uidLimit int) (qrSelect, error) {
	var s qrSelect
	var perr error
	err := c.cmd(func(l []byte) {
		if v, ok := respCode(l, "UIDVALIDITY"); ok {
			s.uidValidity = uint32(v)
		}
		if v, ok := respCode(l, "HIGHESTMODSEQ"); ok {
			s.modseq = v
		}
		if v, ok := respCode(l, "UIDNEXT"); ok {
			s.uidNext = uint32(v)
		}
		if n, ok := untaggedNum(l, "EXISTS"); ok {
			s.exists = n
		}
		if bytes.HasPrefix(l, []byte("* VANISHED ")) {
			rest := strings.TrimPrefix(string(l), "* VANISHED ")
			rest = strings.TrimPrefix(rest, "(EARLIER) ")
			u, err := parseUIDSet(strings.TrimSpace(rest), uidLimit)
			if err != nil && perr == nil {
				perr = err
			}
			s.vanished = append(s.vanished, u...)
		}
		if _, ok := untaggedNum(l, "FETCH"); ok {
			s.fetches++
			if u, ok := fetchUID(l); ok {
				s.fetched = append(s.fetched, u)
			}
		}
	}, "%s", line)
	if err == nil {
		err = perr
	}
	return s, err
}

// diffUIDs returns the UIDs of want missing from got and the number of
// UIDs of got not in want.
func diffUIDs(got, want []uint32) (missing []uint32, extra int) {
	g := make(map[uint32]bool, len(got))
	for _, u := range got {
		g[u] = true
	}
	w := make(map[uint32]bool, len(want))
	for _, u := range want {
		w[u] = true
		if !g[u] {
			missing = append(missing, u)
		}
	}
	for u := range g {
		if !w[u] {
			extra++
		}
	}
	return missing, extra
}

func uidList(us []uint32) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = strconv.FormatUint(uint64(u), 10)
	}
	return strings.Join(s, ",")
}

// qrChange makes one round's changes on a second connection: it flips
// \Flagged on qrFlagChanges messages and expunges qrExpunges others, each
// picked at random in its own slice of the mailbox.
func qrChange(ctx context.Context, o *options, r *rand.Rand) (flagged, expunged []uint32, err error) {
	c, err := qrConnect(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	defer c.logout()
	if _, err := c.selectMailbox("INBOX", false); err != nil {
		return nil, nil, err
	}
	var uids []uint32
	if err := c.cmd(func(l []byte) {
		if bytes.HasPrefix(l, []byte("* SEARCH")) {
			for _, f := range strings.Fields(string(l[len("* SEARCH"):])) {
				if v, err := strconv.ParseUint(f, 10, 32); err == nil {
					uids = append(uids, uint32(v))
				}
			}
		}
	}, "UID SEARCH ALL"); err != nil {
		return nil, nil, err
	}
	k := qrFlagChanges + qrExpunges
	if len(uids) < 2*k {
		return nil, nil, fmt.Errorf("INBOX has %d messages; need at least %d", len(uids), 2*k)
	}
	for i := 0; i < k; i++ {
		lo, hi := i*len(uids)/k, (i+1)*len(uids)/k
		u := uids[lo+r.IntN(hi-lo)]
		if i%2 == 0 && len(flagged) < qrFlagChanges || len(expunged) >= qrExpunges {
			flagged = append(flagged, u)
		} else {
			expunged = append(expunged, u)
		}
	}
	// Flip \Flagged so that every STORE is a real change.
	has := map[uint32]bool{}
	if err := c.cmd(func(l []byte) {
		if u, ok := fetchUID(l); ok {
			has[u] = bytes.Contains(l, []byte(`\Flagged`))
		}
	}, "UID FETCH %s (UID FLAGS)", uidList(flagged)); err != nil {
		return nil, nil, err
	}
	var set, clear []uint32
	for _, u := range flagged {
		if has[u] {
			clear = append(clear, u)
		} else {
			set = append(set, u)
		}
	}
	if len(set) > 0 {
		if err := c.cmd(nil, `UID STORE %s +FLAGS.SILENT (\Flagged)`, uidList(set)); err != nil {
			return nil, nil, err
		}
	}
	if len(clear) > 0 {
		if err := c.cmd(nil, `UID STORE %s -FLAGS.SILENT (\Flagged)`, uidList(clear)); err != nil {
			return nil, nil, err
		}
	}
	if err := c.cmd(nil, `UID STORE %s +FLAGS.SILENT (\Deleted)`, uidList(expunged)); err != nil {
		return nil, nil, err
	}
	if err := c.cmd(nil, "UID EXPUNGE %s", uidList(expunged)); err != nil {
		return nil, nil, err
	}
	return flagged, expunged, nil
}

// qrSample is one measured command.
type qrSample struct {
	d     time.Duration
	bytes int64
}

type qrSeries []qrSample

func (s qrSeries) stats() (p50, p99 time.Duration, b50, b99 int64) {
	ds := make([]time.Duration, len(s))
	bs := make([]time.Duration, len(s)) // bytes, sorted with the same helper
	for i, x := range s {
		ds[i], bs[i] = x.d, time.Duration(x.bytes)
	}
	slices.Sort(ds)
	slices.Sort(bs)
	return percentile(ds, 50), percentile(ds, 99), int64(percentile(bs, 50)), int64(percentile(bs, 99))
}

func qresyncRun(ctx context.Context, o *options, res *result) error {
	rounds := int(o.count)
	if rounds <= 0 {
		rounds = qrDefaultRound
	}
	r := rand.New(rand.NewPCG(o.seed, 0x9e5))
	rec := newRecorder()
	series := map[string]qrSeries{}
	// Baseline: the first client's state before it goes offline.
	a, err := qrConnect(ctx, o)
	if err != nil {
		return err
	}
	if err := a.cmd(nil, "ENABLE QRESYNC"); err != nil {
		a.Close()
		return err
	}
	base, err := a.selectCmd("SELECT INBOX", 1<<24)
	a.logout()
	if err != nil {
		return err
	}
	if base.modseq == 0 {
		return errors.New("SELECT after ENABLE QRESYNC reported no HIGHESTMODSEQ")
	}
	var exact = map[string]int{}
	var extraVanished, extraFetch int
	var wrong []string
	var exists int
	deadline := time.Now().Add(o.duration)
	t0 := time.Now()
	done := 0
	for ; done < rounds && time.Now().Before(deadline) && ctx.Err() == nil; done++ {
		flagged, expunged, err := qrChange(ctx, o, r)
		if err != nil {
			return fmt.Errorf("round %d: changes: %w", done, err)
		}
		a, err := qrConnect(ctx, o)
		if err != nil {
			return err
		}
		if err := a.cmd(nil, "ENABLE QRESYNC"); err != nil {
			a.Close()
			return err
		}
		variants := []string{"qresync", "qresync-known"}
		if done%2 == 1 {
			variants[0], variants[1] = variants[1], variants[0]
		}
		var next qrSelect
		for i, v := range variants {
			if i > 0 {
				if err := a.cmd(nil, "UNSELECT"); err != nil {
					a.Close()
					return err
				}
			}
			line := fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", base.uidValidity, base.modseq)
			if v == "qresync-known" {
				line = fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 1:%d))", base.uidValidity, base.modseq, max(base.uidNext, 2)-1)
			}
			var s qrSelect
			b0, st := a.bytesIn, time.Now()
			s, err = a.selectCmd(line, int(base.uidNext)+1)
			d, nb := time.Since(st), a.bytesIn-b0
			if err != nil {
				a.Close()
				return fmt.Errorf("round %d: %s: %w", done, line, err)
			}
			rec.add(v, d, int64(s.fetches), nb)
			series[v] = append(series[v], qrSample{d, nb})
			mv, xv := diffUIDs(s.vanished, expunged)
			mf, xf := diffUIDs(s.fetched, flagged)
			extraVanished += xv
			extraFetch += xf
			if len(mv) > 0 || len(mf) > 0 || s.fetches != len(s.fetched) {
				wrong = append(wrong, fmt.Sprintf("round %d %s: VANISHED lacks %v, FETCH lacks %v (%d FETCH, %d with UID)",
					done, v, mv, mf, s.fetches, len(s.fetched)))
			}
			if len(mv) == 0 && len(mf) == 0 && xv == 0 && xf == 0 && s.fetches == qrFlagChanges {
				exact[v]++
			}
			if s.uidValidity != base.uidValidity {
				a.Close()
				return fmt.Errorf("round %d: UIDVALIDITY changed from %d to %d", done, base.uidValidity, s.uidValidity)
			}
			next = s
		}
		a.logout()
		base = next
		exists = next.exists

		// The same resync without QRESYNC: every message's flags.
		f, err := qrConnect(ctx, o)
		if err != nil {
			return err
		}
		var n int
		b0, st := f.bytesIn, time.Now()
		_, err = f.selectMailbox("INBOX", false)
		ds, nbs := time.Since(st), f.bytesIn-b0
		if err == nil {
			err = f.cmd(func(l []byte) {
				if _, ok := untaggedNum(l, "FETCH"); ok {
					n++
				}
			}, "UID FETCH 1:* (FLAGS)")
		}
		d, nb := time.Since(st), f.bytesIn-b0
		f.logout()
		if err != nil {
			return fmt.Errorf("round %d: full resync: %w", done, err)
		}
		if n != exists {
			wrong = append(wrong, fmt.Sprintf("round %d full-resync: %d FETCH responses for %d messages", done, n, exists))
		}
		rec.add("plain-select", ds, 0, nbs)
		series["plain-select"] = append(series["plain-select"], qrSample{ds, nbs})
		rec.add("full-resync", d, int64(n), nb)
		series["full-resync"] = append(series["full-resync"], qrSample{d, nb})
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Ops = rec.summary(time.Since(t0))
	res.Extra = map[string]float64{
		"messages": float64(exists), "rounds": float64(done),
		"flag_changes": qrFlagChanges, "expunges": qrExpunges,
		"extra_vanished": float64(extraVanished), "extra_fetch": float64(extraFetch),
	}
	for _, v := range []string{"qresync", "qresync-known", "full-resync", "plain-select"} {
		p50, p99, b50, b99 := series[v].stats()
		k := strings.ReplaceAll(v, "-", "_")
		res.Extra[k+"_p50_ms"] = ms(p50)
		res.Extra[k+"_p99_ms"] = ms(p99)
		res.Extra[k+"_bytes_p50"] = float64(b50)
		res.Extra[k+"_bytes_p99"] = float64(b99)
		if strings.HasPrefix(v, "qresync") {
			res.Extra[k+"_exact_rounds"] = float64(exact[v])
		}
	}
	res.Primary, res.Value, res.HigherBetter = "qresync p50 ms", res.Extra["qresync_p50_ms"], false
	if len(wrong) > 0 {
		return fmt.Errorf("wrong resync answers: %s", strings.Join(wrong[:min(len(wrong), 5)], "; "))
	}
	if done == 0 {
		return errors.New("no round finished within --duration")
	}
	return nil
}
