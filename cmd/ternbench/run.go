package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// options are the command-line settings shared by all workloads.
type options struct {
	addr        string
	tls         bool
	insecure    bool
	userPattern string
	users       int
	firstUser   int
	password    string
	concurrency int
	count       int64
	duration    time.Duration
	seed        uint64
	messages    int    // seed: messages per user
	mailbox     string // seed: target mailbox
	conns       int    // idle-fanout: idle connections
	appendAddr  string // idle-fanout: APPEND through this server (another node); "": addr
	idlers      int    // flags: idlers per writer
	serverPID   int
	sizes       []int         // append: sizes (bytes)
	compress    bool          // COMPRESS=DEFLATE after login (RFC 4978)
	killPID     int           // failover: the node to kill
	sources     int           // failover: loopback source addresses (0: the default)
	retry       time.Duration // failover: pause before another reconnection attempt
	// timedPhase, if set, is called as bench's timed loop begins (true)
	// and ends (false): CPU sampled there leaves out logins and setup.
	timedPhase func(begin bool)
}

func (o *options) user(i int) string {
	if !strings.Contains(o.userPattern, "%") {
		return o.userPattern
	}
	return fmt.Sprintf(o.userPattern, o.firstUser+i%max(o.users, 1))
}

func (o *options) dialOpts(i int) dialOpts {
	d := dialOpts{addr: o.addr, tls: o.tls, insecure: o.insecure}
	// Above ~28,000 connections one source address runs out of ports.
	if i >= 25000 {
		if host, _, err := net.SplitHostPort(o.addr); err == nil && strings.HasPrefix(host, "127.") {
			d.local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i/25000))}
		}
	}
	return d
}

// connect dials and logs in as user i.
func (o *options) connect(ctx context.Context, i int) (*client, error) {
	c, err := dial(ctx, o.dialOpts(i))
	if err != nil {
		return nil, err
	}
	if err := c.login(o.user(i), o.password); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", o.user(i), err)
	}
	if o.compress {
		if err := c.compress(false); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// worker runs operations of a workload on its own connection(s).
type worker interface {
	// op performs one operation and records it.
	op(ctx context.Context, rec *recorder) error
	close()
}

// bench is the generic driver: it sets up concurrency workers (in
// parallel, bounded), then runs operations until the duration ends or
// count operations have been started, whichever comes first.
func bench(ctx context.Context, o *options, newWorker func(ctx context.Context, i int) (worker, error)) (*recorder, time.Duration, error) {
	workers := make([]worker, o.concurrency)
	if err := parallel(ctx, o.concurrency, 16, func(ctx context.Context, i int) error {
		w, err := newWorker(ctx, i)
		if err != nil {
			return fmt.Errorf("worker %d setup: %w", i, err)
		}
		workers[i] = w
		return nil
	}); err != nil {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
		return nil, 0, err
	}
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()
	var started atomic.Int64
	deadline := time.Now().Add(o.duration)
	rctx, cancel := context.WithDeadline(ctx, deadline.Add(30*time.Second))
	defer cancel()
	recs := make([]*recorder, len(workers))
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	if o.timedPhase != nil {
		o.timedPhase(true)
	}
	start := time.Now()
	for i, w := range workers {
		recs[i] = newRecorder()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && rctx.Err() == nil {
				if o.count > 0 && started.Add(1) > o.count {
					return
				}
				if err := w.op(rctx, recs[i]); err != nil {
					var se *statusError
					if errors.As(err, &se) {
						continue // recorded by the op; the session is still usable
					}
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if o.timedPhase != nil {
		o.timedPhase(false)
	}
	total := newRecorder()
	for _, r := range recs {
		total.merge(r)
	}
	return total, elapsed, errors.Join(errs...)
}

// parallel runs fn(i) for i in [0,n) with at most width at a time.
func parallel(ctx context.Context, n, width int, fn func(ctx context.Context, i int) error) error {
	sem := make(chan struct{}, width)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// timed runs f and records it under name with items and the bytes the
// connection read meanwhile.
func timed(rec *recorder, c *client, name string, items func() int64, f func() error) error {
	b0 := c.bytesIn
	t0 := time.Now()
	err := f()
	d := time.Since(t0)
	if err != nil {
		rec.fail(name)
		return err
	}
	var n int64
	if items != nil {
		n = items()
	}
	rec.add(name, d, n, c.bytesIn-b0)
	return nil
}
