package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// result is one run's JSON output.
type result struct {
	Workload     string             `json:"workload"`
	Label        string             `json:"label,omitempty"`
	Addr         string             `json:"addr"`
	TLS          bool               `json:"tls"`
	Compress     bool               `json:"compress,omitempty"`
	Concurrency  int                `json:"concurrency"`
	Started      time.Time          `json:"started"`
	Seconds      float64            `json:"seconds"`
	Primary      string             `json:"primary"`
	Value        float64            `json:"value"`
	HigherBetter bool               `json:"higher_is_better"`
	Ops          []OpStats          `json:"ops"`
	Extra        map[string]float64 `json:"extra,omitempty"`
	Server       *ServerStats       `json:"server,omitempty"`
	// ClientCPUSeconds is ternbench's own CPU (user+system) for the run,
	// setup included: on a small machine the load generator shares the
	// cores with the server, and its cost per operation bounds the ratio.
	ClientCPUSeconds float64 `json:"client_cpu_seconds,omitempty"`
	// TimedCPU is the CPU of the timed loop alone (no logins, no setup),
	// for CPU per operation.
	TimedCPU *TimedCPU `json:"timed_cpu,omitempty"`
	Error    string    `json:"error,omitempty"`
}

func findOp(ops []OpStats, name string) OpStats {
	for _, o := range ops {
		if o.Op == name {
			return o
		}
	}
	return OpStats{}
}

func sumOps(ops []OpStats, names ...string) (count int, perSec float64) {
	for _, o := range ops {
		for _, n := range names {
			if o.Op == n {
				count += o.Count
				perSec += o.OpsPerSec
			}
		}
	}
	return
}

// ---- seed ----

// seedMailboxes fills o.mailbox of users [0,o.users) with o.messages
// deterministic messages each (MULTIAPPEND batches, one connection per
// user, in order, so UIDs are identical on every server).
func seedMailboxes(ctx context.Context, o *options, res *result) error {
	var total atomic.Int64
	var bytesTotal atomic.Int64
	t0 := time.Now()
	err := parallel(ctx, o.users, max(o.concurrency, 1), func(ctx context.Context, i int) error {
		c, err := o.connect(ctx, i)
		if err != nil {
			return err
		}
		defer c.logout()
		if o.mailbox != "INBOX" {
			c.cmd(nil, "CREATE %s", quote(o.mailbox)) // may exist
		}
		si, err := c.selectMailbox(o.mailbox, true)
		if err != nil {
			return fmt.Errorf("examine %s: %w", o.mailbox, err)
		}
		g := newGenerator(o.seed, uint64(o.firstUser+i))
		// Skip the messages already there, so seeding can resume.
		for k := 0; k < si.exists; k++ {
			g.next()
		}
		batch := make([][]byte, 0, 64)
		batchBytes := 0
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := c.appendMsgs(o.mailbox, "", batch...); err != nil {
				return fmt.Errorf("seed %s: %w", o.user(i), err)
			}
			total.Add(int64(len(batch)))
			bytesTotal.Add(int64(batchBytes))
			batch, batchBytes = batch[:0], 0
			return nil
		}
		for k := si.exists; k < o.messages; k++ {
			m := g.next()
			batch = append(batch, m)
			batchBytes += len(m)
			if len(batch) == cap(batch) || batchBytes > 4<<20 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
	el := time.Since(t0)
	res.Seconds = el.Seconds()
	res.Primary, res.Value, res.HigherBetter = "messages/s", float64(total.Load())/el.Seconds(), true
	res.Extra = map[string]float64{"messages": float64(total.Load()), "bytes": float64(bytesTotal.Load())}
	return err
}

// ---- sync-headers ----

type syncWorker struct {
	c   *client
	box string
}

const syncFetch = "UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)"

func (w *syncWorker) op(ctx context.Context, rec *recorder) error {
	if err := timed(rec, w.c, "select", nil, func() error { _, err := w.c.selectMailbox(w.box, false); return err }); err != nil {
		return err
	}
	var n int64
	return timed(rec, w.c, "fetch", func() int64 { return n }, func() error {
		return w.c.cmd(func(l []byte) {
			if bytes.Contains(l[:min(len(l), 32)], []byte(" FETCH ")) {
				n++
			}
		}, syncFetch)
	})
}

func (w *syncWorker) close() { w.c.logout() }

// ---- read ----

type readWorker struct {
	c    *client
	r    *rand.Rand
	maxU uint32
}

func (w *readWorker) op(ctx context.Context, rec *recorder) error {
	uid := 1 + w.r.Uint32N(w.maxU)
	return timed(rec, w.c, "fetch-body", func() int64 { return 1 }, func() error {
		return w.c.cmd(nil, "UID FETCH %d BODY.PEEK[]", uid)
	})
}

func (w *readWorker) close() { w.c.logout() }

// ---- append ----

// appendPool returns messages of the configured sizes: weights 70/25/5
// for 2 KiB/30 KiB/500 KiB (most mail is small; a few carry attachments).
func appendPool(o *options) (small, medium, large [][]byte) {
	g := newGenerator(o.seed+1000, 7)
	for range 16 {
		small = append(small, g.sized(o.sizes[0]))
		medium = append(medium, g.sized(o.sizes[1]))
	}
	for range 4 {
		large = append(large, g.sized(o.sizes[2]))
	}
	return
}

func pickSized(r *rand.Rand, small, medium, large [][]byte) (string, []byte) {
	x := r.IntN(100)
	switch {
	case x < 70:
		return "append-small", small[r.IntN(len(small))]
	case x < 95:
		return "append-medium", medium[r.IntN(len(medium))]
	default:
		return "append-large", large[r.IntN(len(large))]
	}
}

type appendPools struct{ small, medium, large [][]byte }

type appendWorker struct {
	c   *client
	r   *rand.Rand
	p   *appendPools
	box string
}

func (w *appendWorker) op(ctx context.Context, rec *recorder) error {
	name, m := pickSized(w.r, w.p.small, w.p.medium, w.p.large)
	t0 := time.Now()
	err := w.c.appendMsgs(w.box, `\Seen`, m)
	d := time.Since(t0)
	if err != nil {
		rec.fail(name)
		return err
	}
	rec.add(name, d, 1, int64(len(m)))
	return nil
}

func (w *appendWorker) close() { w.c.logout() }

// ---- search ----

type searchWorker struct {
	c *client
	r *rand.Rand
	k int
}

func (w *searchWorker) op(ctx context.Context, rec *recorder) error {
	w.k++
	var name, q string
	switch w.k % 3 {
	case 0:
		name, q = "search-from", "SEARCH FROM "+quote(lastNames[w.r.IntN(len(lastNames))])
	case 1:
		name, q = "search-body", "SEARCH BODY "+quote(searchWords[w.r.IntN(len(searchWords))])
	default:
		name, q = "search-text", "SEARCH TEXT "+quote(searchWords[w.r.IntN(len(searchWords))])
	}
	return timed(rec, w.c, name, func() int64 { return 1 }, func() error { return w.c.cmd(nil, "%s", q) })
}

func (w *searchWorker) close() { w.c.logout() }

// ---- flags ----

// opLog records when a writer sent each operation, so idlers can measure
// how long until they were told about it: a notification's latency is
// attributed to every operation sent before it and not yet seen by that
// idler (an idler that gets one coalesced update for two operations
// records both).
type opLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (l *opLog) add(t time.Time) {
	l.mu.Lock()
	l.times = append(l.times, t)
	l.mu.Unlock()
}

type idler struct {
	c    *client
	tag  string
	log  *opLog
	next int
	rec  *recorder
	done chan struct{}
}

// run reads notifications until the connection is closed.
func (d *idler) run() {
	defer close(d.done)
	for {
		line, err := d.c.readResponse()
		if err != nil {
			return
		}
		if len(line) < 2 || line[0] != '*' {
			continue
		}
		if !bytes.Contains(line, []byte(" FETCH ")) && !bytes.HasSuffix(line, []byte(" EXISTS")) && !bytes.HasSuffix(line, []byte(" EXPUNGE")) {
			continue
		}
		now := time.Now()
		d.log.mu.Lock()
		for ; d.next < len(d.log.times); d.next++ {
			d.rec.add("notify", now.Sub(d.log.times[d.next]), 0, 0)
		}
		d.log.mu.Unlock()
	}
}

type flagsWorker struct {
	c       *client
	r       *rand.Rand
	box     string
	exists  int
	log     *opLog
	idlers  []*idler
	untagFn func([]byte)
}

func newFlagsWorker(ctx context.Context, o *options, i int, rec func() *recorder) (*flagsWorker, error) {
	c, err := o.connect(ctx, i)
	if err != nil {
		return nil, err
	}
	w := &flagsWorker{c: c, r: rand.New(rand.NewPCG(o.seed, uint64(i))), box: fmt.Sprintf("bflags-%d", i), log: &opLog{}}
	w.untagFn = func(l []byte) {
		if n, ok := untaggedNum(l, "EXISTS"); ok {
			w.exists = n
		} else if _, ok := untaggedNum(l, "EXPUNGE"); ok {
			w.exists--
		}
	}
	c.cmd(nil, "CREATE %s", quote(w.box)) // may exist
	si, err := c.selectMailbox(w.box, false)
	if err != nil {
		c.Close()
		return nil, err
	}
	if si.exists < 100 {
		if _, err := c.selectMailbox("INBOX", true); err != nil {
			c.Close()
			return nil, err
		}
		if err := c.cmd(nil, "UID COPY 1:300 %s", quote(w.box)); err != nil {
			c.Close()
			return nil, fmt.Errorf("populate %s: %w", w.box, err)
		}
		if si, err = c.selectMailbox(w.box, false); err != nil {
			c.Close()
			return nil, err
		}
	}
	w.exists = si.exists
	for k := 0; k < o.idlers; k++ {
		ic, err := o.connect(ctx, i)
		if err != nil {
			w.close()
			return nil, err
		}
		if _, err := ic.selectMailbox(w.box, false); err != nil {
			ic.Close()
			w.close()
			return nil, err
		}
		tag, err := ic.idleStart()
		if err != nil {
			ic.Close()
			w.close()
			return nil, err
		}
		d := &idler{c: ic, tag: tag, log: w.log, rec: rec(), done: make(chan struct{})}
		w.idlers = append(w.idlers, d)
		go d.run()
	}
	return w, nil
}

func (w *flagsWorker) op(ctx context.Context, rec *recorder) error {
	if w.exists == 0 {
		return errors.New("flags: mailbox is empty")
	}
	seq := 1 + w.r.IntN(w.exists)
	x := w.r.IntN(100)
	switch {
	case x < 70:
		sign := "+"
		if x >= 40 {
			sign = "-"
		}
		w.log.add(time.Now())
		return timed(rec, w.c, "store", nil, func() error {
			return w.c.cmd(w.untagFn, `STORE %d %sFLAGS.SILENT (\Flagged)`, seq, sign)
		})
	case x < 85 || w.exists < 200:
		w.log.add(time.Now())
		return timed(rec, w.c, "copy", nil, func() error {
			return w.c.cmd(w.untagFn, "COPY %d %s", seq, quote(w.box))
		})
	default:
		w.log.add(time.Now())
		return timed(rec, w.c, "expunge", nil, func() error {
			if err := w.c.cmd(w.untagFn, `STORE %d +FLAGS.SILENT (\Deleted)`, seq); err != nil {
				return err
			}
			return w.c.cmd(w.untagFn, "EXPUNGE")
		})
	}
}

func (w *flagsWorker) close() {
	for _, d := range w.idlers {
		d.c.Close()
		<-d.done
	}
	w.c.logout()
}

// ---- mixed ----

// mixedWorker runs a random mix of the commands a mail client sends, in
// the spirit of imaptest's default profile.
type mixedWorker struct {
	c      *client
	r      *rand.Rand
	box    string
	exists int
	p      *appendPools
	untag  func([]byte)
}

func newMixedWorker(ctx context.Context, o *options, i int, p *appendPools) (*mixedWorker, error) {
	c, err := o.connect(ctx, i)
	if err != nil {
		return nil, err
	}
	w := &mixedWorker{c: c, r: rand.New(rand.NewPCG(o.seed+2, uint64(i))), box: fmt.Sprintf("bmixed-%d", i), p: p}
	w.untag = func(l []byte) {
		if n, ok := untaggedNum(l, "EXISTS"); ok {
			w.exists = n
		} else if _, ok := untaggedNum(l, "EXPUNGE"); ok {
			w.exists--
		}
	}
	c.cmd(nil, "CREATE %s", quote(w.box))
	si, err := c.selectMailbox(w.box, false)
	if err != nil {
		c.Close()
		return nil, err
	}
	if si.exists < 100 {
		c.selectMailbox("INBOX", true)
		if err := c.cmd(nil, "UID COPY 1:300 %s", quote(w.box)); err != nil {
			c.Close()
			return nil, fmt.Errorf("populate %s: %w", w.box, err)
		}
		if si, err = c.selectMailbox(w.box, false); err != nil {
			c.Close()
			return nil, err
		}
	}
	w.exists = si.exists
	return w, nil
}

func (w *mixedWorker) op(ctx context.Context, rec *recorder) error {
	c := w.c
	if w.exists == 0 {
		return errors.New("mixed: mailbox is empty")
	}
	seq := 1 + w.r.IntN(w.exists)
	x := w.r.IntN(100)
	switch {
	case x < 15:
		return timed(rec, c, "fetch-flags-all", nil, func() error { return c.cmd(w.untag, "FETCH 1:* (UID FLAGS)") })
	case x < 40:
		return timed(rec, c, "fetch-body", nil, func() error { return c.cmd(w.untag, "FETCH %d BODY.PEEK[]", seq) })
	case x < 55:
		lo := max(1, seq-9)
		return timed(rec, c, "fetch-headers", nil, func() error {
			return c.cmd(w.untag, "FETCH %d:%d (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID)])", lo, seq)
		})
	case x < 72:
		sign := "+"
		if x >= 64 {
			sign = "-"
		}
		return timed(rec, c, "store", nil, func() error { return c.cmd(w.untag, `STORE %d %sFLAGS (\Seen)`, seq, sign) })
	case x < 82:
		q := "SEARCH UNSEEN"
		if x >= 77 {
			q = "SEARCH FROM " + quote(lastNames[w.r.IntN(len(lastNames))])
		}
		return timed(rec, c, "search", nil, func() error { return c.cmd(w.untag, "%s", q) })
	case x < 92 || w.exists < 150:
		m := w.p.small[w.r.IntN(len(w.p.small))]
		if w.r.IntN(4) == 0 {
			m = w.p.medium[w.r.IntN(len(w.p.medium))]
		}
		return timed(rec, c, "append", nil, func() error {
			if err := c.appendMsgs(w.box, "", m); err != nil {
				return err
			}
			return c.cmd(w.untag, "NOOP")
		})
	case x < 98:
		return timed(rec, c, "expunge", nil, func() error {
			if err := c.cmd(w.untag, `STORE %d +FLAGS.SILENT (\Deleted)`, seq); err != nil {
				return err
			}
			return c.cmd(w.untag, "EXPUNGE")
		})
	default:
		return timed(rec, c, "noop", nil, func() error { return c.cmd(w.untag, "NOOP") })
	}
}

func (w *mixedWorker) close() { w.c.logout() }
