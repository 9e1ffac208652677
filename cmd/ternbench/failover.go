package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// failover: o.conns clients (user i of --users each) log in through a
// load balancer (--port), ENABLE QRESYNC, SELECT INBOX and IDLE; then
// the node process --kill-pid is killed with SIGKILL. Every client whose
// connection drops reconnects through the balancer at once, as a mail
// client does (a refused attempt is retried after --retry), logs in,
// SELECTs with QRESYNC (the UIDVALIDITY and HIGHESTMODSEQ it had) and
// IDLEs again. Reported: how many dropped and how many were IDLE again
// within --duration; "back" is the time from the kill until a client was
// IDLE again (its max is the storm's length), "login" and "select" the
// latencies of its successful reconnection; attempts_max and
// attempts_mean count the tries (refused ones included); with
// --server-pid (the surviving node), survivor_cpu_s is its CPU from the
// kill until every client was back.
// --sources N spreads the clients over N loopback source addresses
// (127.0.0.2 on), as clients of many addresses.

// stormClient is one client of the failover workload.
type stormClient struct {
	i        int
	c        *client
	validity uint32
	modseq   uint64
	dropped  chan struct{} // closed when its first connection ends
	refusals []string      // why its reconnection attempts failed
}

// failoverWorkload runs the failover storm and fills res.
func failoverWorkload(ctx context.Context, o *options, res *result) error {
	if o.killPID <= 0 {
		return errors.New("failover needs --kill-pid (the node to kill)")
	}
	clients := make([]*stormClient, o.conns)
	setupEnd := time.Now().Add(o.duration)
	err := parallel(ctx, o.conns, 32, func(ctx context.Context, i int) error {
		s := &stormClient{i: i, dropped: make(chan struct{})}
		if _, _, _, err := s.connectRetry(ctx, o, setupEnd); err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		clients[i] = s
		return nil
	})
	defer func() {
		for _, s := range clients {
			if s != nil && s.c != nil {
				s.c.Close()
			}
		}
	}()
	if err != nil {
		return err
	}
	for _, s := range clients {
		s.refusals = nil // the setup's
		go s.watch()
	}
	time.Sleep(time.Second)
	for _, s := range clients {
		select {
		case <-s.dropped:
			return fmt.Errorf("client %d dropped before the kill", s.i)
		default:
		}
	}
	var cpu0 procSample
	if o.serverPID > 0 {
		cpu0, _ = sampleTree(o.serverPID)
	}
	if err := syscall.Kill(o.killPID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %d: %w", o.killPID, err)
	}
	killed := time.Now()
	rec := newRecorder()
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := killed.Add(o.duration)
	// A client whose connection has not dropped 3 s after the kill is on
	// the surviving node.
	surviving := make(chan struct{})
	time.AfterFunc(3*time.Second, func() { close(surviving) })
	dropped, attempts, maxAttempts := 0, 0, 0
	refusals := map[string]int{}
	for _, s := range clients {
		wg.Go(func() {
			select {
			case <-s.dropped:
			case <-surviving:
				return
			}
			r := newRecorder()
			n := s.reconnect(ctx, o, killed, deadline, r)
			mu.Lock()
			rec.merge(r)
			for _, e := range s.refusals {
				refusals[e]++
			}
			dropped++
			attempts += n
			maxAttempts = max(maxAttempts, n)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Seconds = time.Since(killed).Seconds()
	res.Ops = rec.summary(time.Since(killed))
	back := findOp(res.Ops, "back")
	res.Primary, res.Value, res.HigherBetter = "storm_s", back.Maxms/1000, false
	res.Extra = map[string]float64{"dropped": float64(dropped), "back": float64(back.Count),
		"survivors": float64(o.conns - dropped), "attempts_max": float64(maxAttempts),
		"attempts_mean": float64(attempts) / float64(max(dropped, 1))}
	if o.serverPID > 0 {
		if cpu1, err := sampleTree(o.serverPID); err == nil {
			res.Extra["survivor_cpu_s"] = cpu1.cpuSec - cpu0.cpuSec
			res.Extra["survivor_cpu_ms_per_client"] = (cpu1.cpuSec - cpu0.cpuSec) * 1000 / float64(max(dropped, 1))
		}
	}
	reportRefusals(refusals)
	if back.Count < dropped {
		return fmt.Errorf("%d of %d dropped clients not back within %v", dropped-back.Count, dropped, o.duration)
	}
	return nil
}

// connect logs s in through the balancer, ENABLEs QRESYNC, SELECTs INBOX
// (with QRESYNC from what s saw before, if anything) and starts IDLE; it
// returns how long the login and the SELECT took.
func (s *stormClient) connect(ctx context.Context, o *options) (login, sel time.Duration, err error) {
	d := o.dialOpts(s.i)
	if o.sources > 0 {
		d.local = &net.TCPAddr{IP: net.IPv4(127, 0, byte(s.i%o.sources/250), byte(2+s.i%o.sources%250))}
	}
	c, err := dial(ctx, d)
	if err != nil {
		return 0, 0, err
	}
	t := time.Now()
	if err := c.login(o.user(s.i), o.password); err != nil {
		c.Close()
		return 0, 0, fmt.Errorf("login %s: %w", o.user(s.i), err)
	}
	login = time.Since(t)
	if err := c.cmd(nil, "ENABLE QRESYNC"); err != nil {
		c.Close()
		return 0, 0, err
	}
	line := "SELECT INBOX"
	if s.validity != 0 {
		line = fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", s.validity, s.modseq)
	}
	t = time.Now()
	si, err := c.selectCmd(line, 1<<20)
	if err != nil {
		c.Close()
		return 0, 0, err
	}
	sel = time.Since(t)
	if _, err := c.idleStart(); err != nil {
		c.Close()
		return 0, 0, err
	}
	s.c, s.validity, s.modseq = c, si.uidValidity, si.modseq
	return login, sel, nil
}

// watch reads s's IDLE responses until its connection ends.
func (s *stormClient) watch() {
	defer close(s.dropped)
	for {
		if _, err := s.c.readResponse(); err != nil {
			return
		}
	}
}

// reconnect brings s back after its node was killed at killed and
// records the reconnection in rec; it returns the number of attempts.
func (s *stormClient) reconnect(ctx context.Context, o *options, killed, deadline time.Time, rec *recorder) int {
	s.c.Close()
	attempts, login, sel, err := s.connectRetry(ctx, o, deadline)
	if err != nil {
		rec.fail("back")
		return attempts
	}
	rec.add("back", time.Since(killed), 0, 0)
	rec.add("login", login, 0, 0)
	rec.add("select", sel, 0, 0)
	return attempts
}

// connectRetry is connect, tried again every o.retry until it succeeds
// or deadline passes (a server refusing a connection, or a balancer with
// no node to give it, is what a storm meets); it returns the attempts
// made and the last error.
func (s *stormClient) connectRetry(ctx context.Context, o *options, deadline time.Time) (attempts int, login, sel time.Duration, err error) {
	for {
		attempts++
		login, sel, err = s.connect(ctx, o)
		if err == nil || !time.Now().Before(deadline) {
			return attempts, login, sel, err
		}
		s.refusals = append(s.refusals, err.Error())
		select {
		case <-ctx.Done():
			return attempts, 0, 0, ctx.Err()
		case <-time.After(o.retry):
		}
	}
}

// reportRefusals prints the commonest reasons of failed reconnection
// attempts to stderr.
func reportRefusals(refusals map[string]int) {
	reasons := slices.Collect(maps.Keys(refusals))
	slices.SortFunc(reasons, func(a, b string) int { return cmp.Compare(refusals[b], refusals[a]) })
	for _, e := range reasons[:min(len(reasons), 8)] {
		fmt.Fprintf(os.Stderr, "ternbench: failover: %d failed attempts: %s\n", refusals[e], e)
	}
}
