package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// idle-fanout: o.conns connections IDLE on one mailbox of one user; a
// separate connection APPENDs one message; the operation ends when every
// idler has seen the new EXISTS. With o.appendAddr the APPENDs go through
// that server (another node on the same database): the cross-node
// notification path.

type fanIdler struct {
	c    *client
	lats []time.Duration
	done chan struct{}
}

func idleFanout(ctx context.Context, o *options, res *result) error {
	const box = "bfanout"
	ctlOpts := *o
	if o.appendAddr != "" {
		ctlOpts.addr = o.appendAddr
	}
	ctl, err := ctlOpts.connect(ctx, 0)
	if err != nil {
		return err
	}
	defer ctl.logout()
	ctl.cmd(nil, "CREATE %s", quote(box))
	si, err := ctl.selectMailbox(box, false)
	if err != nil {
		return err
	}

	var (
		mu       sync.Mutex
		target   atomic.Int64 // EXISTS count that means "seen"
		roundT0  atomic.Int64 // unix nanos of the current APPEND
		pending  atomic.Int64
		roundEnd = make(chan struct{}, 1)
	)
	target.Store(int64(1 << 62))
	idlers := make([]*fanIdler, o.conns)
	var openIdler func(ctx context.Context, i int) error
	setupStart := time.Now()
	open := func(lo, hi int) error {
		return parallel(ctx, hi-lo, 32, func(ctx context.Context, k int) error { return openIdler(ctx, lo+k) })
	}
	openIdler = func(ctx context.Context, i int) error {
		c, err := dial(ctx, o.dialOpts(i))
		if err != nil {
			return err
		}
		if err := c.cmd(nil, "LOGIN %s %s", quote(o.user(0)), quote(o.password)); err != nil {
			c.Close()
			return fmt.Errorf("login: %w", err)
		}
		if o.compress {
			if err := c.compress(true); err != nil {
				c.Close()
				return err
			}
		}
		if _, err := c.selectMailbox(box, false); err != nil {
			c.Close()
			return err
		}
		if _, err := c.idleStart(); err != nil {
			c.Close()
			return err
		}
		d := &fanIdler{c: c, done: make(chan struct{})}
		mu.Lock()
		idlers[i] = d
		mu.Unlock()
		go func() {
			defer close(d.done)
			for {
				line, err := c.readResponse()
				if err != nil {
					return
				}
				if n, ok := untaggedNum(line, "EXISTS"); ok && int64(n) >= target.Load() {
					d.lats = append(d.lats, time.Duration(time.Now().UnixNano()-roundT0.Load()))
					if pending.Add(-1) == 0 {
						select {
						case roundEnd <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
		return nil
	}
	// Memory per connection is the marginal cost between n/2 and n idle
	// connections, so one-off costs (login hashing, caches) do not count.
	half := o.conns / 2
	err = open(0, half)
	var mem1, mem2 procSample
	if err == nil && o.serverPID > 0 {
		time.Sleep(time.Second)
		mem1, err = sampleTreePSS(o.serverPID)
	}
	if err == nil {
		err = open(half, o.conns)
	}
	closeIdlers := sync.OnceFunc(func() {
		for _, d := range idlers {
			if d != nil {
				d.c.Close()
			}
		}
		for _, d := range idlers {
			if d != nil {
				<-d.done
			}
		}
	})
	defer closeIdlers()
	if err != nil {
		return fmt.Errorf("idle-fanout setup: %w", err)
	}
	res.Extra = map[string]float64{"connections": float64(o.conns), "setup_seconds": time.Since(setupStart).Seconds()}
	time.Sleep(time.Second) // let the server settle
	if o.serverPID > 0 && o.conns-half > 0 {
		if mem2, err = sampleTreePSS(o.serverPID); err != nil {
			return err
		}
		n := float64(o.conns - half)
		res.Extra["rss_kib_per_conn"] = float64(mem2.rssKiB-mem1.rssKiB) / n
		res.Extra["pss_kib_per_conn"] = float64(mem2.pssKiB-mem1.pssKiB) / n
		res.Extra["server_procs"] = float64(mem2.procs)
		res.Extra["server_pss_kib"] = float64(mem2.pssKiB)
	}
	measureStart := time.Now()

	msg := newGenerator(o.seed+3, 1).sized(2048)
	exists := int64(si.exists)
	var all []time.Duration
	var ops int64
	deadline := time.Now().Add(o.duration)
	for time.Now().Before(deadline) && (o.count == 0 || ops < o.count) {
		exists++
		pending.Store(int64(o.conns))
		target.Store(exists)
		t0 := time.Now()
		roundT0.Store(t0.UnixNano())
		if err := ctl.appendMsgs(box, "", msg); err != nil {
			return err
		}
		select {
		case <-roundEnd:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("idle-fanout: %d of %d connections not notified after 30s", pending.Load(), o.conns)
		case <-ctx.Done():
			return ctx.Err()
		}
		all = append(all, time.Since(t0))
		ops++
		// Keep the control session's view current (and the mailbox size known).
		ctl.cmd(nil, "NOOP")
		time.Sleep(50 * time.Millisecond)
	}
	closeIdlers()
	rec := newRecorder()
	for _, d := range all {
		rec.add("all-notified", d, int64(o.conns), 0)
	}
	for _, d := range idlers {
		for _, l := range d.lats {
			rec.add("notify", l, 0, 0)
		}
	}
	res.Seconds = time.Since(measureStart).Seconds()
	res.Ops = rec.summary(time.Since(measureStart))
	slices.Sort(all)
	res.Primary, res.HigherBetter = "all-notified p50 ms", false
	res.Value = ms(percentile(all, 50))
	return nil
}
