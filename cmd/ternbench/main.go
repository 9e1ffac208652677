// Command ternbench is an IMAP load generator. It speaks IMAP to any
// server and measures per-operation throughput and latency.
//
// Usage:
//
//	ternbench [flags] WORKLOAD
//	ternbench report FILE...
//
// Workloads: seed, sync-headers, read, append, flags, idle-fanout,
// search, mixed, logins, failover. Every run is bounded by --duration (and --count).
// "ternbench lmtp" (lmtp.go) and "ternbench bigbox" (bigbox.go) have
// their own flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

const usage = `ternbench: IMAP load generator

Usage:
  ternbench [flags] WORKLOAD
  ternbench report [--markdown] FILE...   median table of JSON results (tern vs others)
  ternbench lmtp [flags]                  LMTP delivery throughput (ternbench lmtp -h)
  ternbench bigbox gen|run|table ...      everyday commands on one large INBOX (ternbench bigbox -h)

Workloads:
  seed          fill --mailbox of each user with --messages deterministic messages (MULTIAPPEND)
  sync-headers  SELECT INBOX + UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE); messages/s
  read          random UID FETCH n BODY.PEEK[] in INBOX; ops/s and MB/s
  append        APPEND 2 KiB/30 KiB/500 KiB (70/25/5 %%) to "bench-append"; messages/s
  flags         STORE/COPY/EXPUNGE mix on "bflags-N" while --idlers clients IDLE on it; ops/s, notify latency
  idle-fanout   --conns clients IDLE on "bfanout"; one APPEND (through --append-port if set: another
                node); time until each idler (notify p50/p99) and all saw EXISTS; RSS per connection
  search        SEARCH FROM/BODY/TEXT over INBOX; ops/s
  mixed         random client-like mix (fetch, store, search, append, expunge) on "bmixed-N"; ops/s
  logins        connect, LOGIN as the next of --users, LOGOUT: each user once (a reconnect storm,
                every login checking the password hash); logins/s
  failover      --conns clients IDLE through a load balancer (--port); --kill-pid is SIGKILLed; the
                dropped clients reconnect, SELECT with QRESYNC, IDLE again; time until all are back

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "report" {
		return report(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "lmtp" { // LMTP delivery workload (lmtp.go)
		return lmtpMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "bigbox" { // large-mailbox commands (bigbox.go)
		return bigboxMain(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("ternbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var o options
	var port int
	var host, jsonOut, label, sizes string
	fs.StringVar(&host, "host", "127.0.0.1", "server host")
	fs.IntVar(&port, "port", 143, "server port")
	fs.BoolVar(&o.tls, "tls", false, "implicit TLS (IMAPS)")
	fs.BoolVar(&o.insecure, "insecure", false, "skip certificate verification (loopback hosts only)")
	fs.StringVar(&o.userPattern, "user", "user%d", "user name or pattern with %d")
	fs.IntVar(&o.users, "users", 1, "number of users the pattern expands to")
	fs.IntVar(&o.firstUser, "first-user", 1, "first number for the user pattern")
	fs.StringVar(&o.password, "password", "", "password of every user (or env TERNBENCH_PASSWORD)")
	fs.IntVar(&o.concurrency, "concurrency", 1, "concurrent client connections (workers)")
	fs.Int64Var(&o.count, "count", 0, "stop after this many operations (0: only the duration bounds)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (always bounded; at most 1h)")
	var seed uint64
	fs.Uint64Var(&seed, "seed", 1, "PRNG seed for generated messages and random choices")
	fs.IntVar(&o.messages, "messages", 1000, "seed: messages per user")
	fs.StringVar(&o.mailbox, "mailbox", "INBOX", "seed: mailbox to fill")
	fs.IntVar(&o.conns, "conns", 100, "idle-fanout: idle connections")
	appendPort := fs.Int("append-port", 0, "idle-fanout: APPEND through the server at --host:PORT (another node of a cluster) instead of --port")
	fs.IntVar(&o.idlers, "idlers", 2, "flags: idling clients per writer")
	fs.IntVar(&o.serverPID, "server-pid", 0, "server process id: report its (tree's) CPU seconds and RSS from /proc")
	fs.IntVar(&o.killPID, "kill-pid", 0, "failover: process id of the node to kill (SIGKILL)")
	fs.IntVar(&o.sources, "sources", 0, "failover: spread clients over this many loopback source addresses from 127.0.0.2 (0: one)")
	fs.DurationVar(&o.retry, "retry", 200*time.Millisecond, "failover: pause before a client's next reconnection attempt")
	fs.BoolVar(&o.compress, "compress", false, "COMPRESS=DEFLATE after login (RFC 4978); bytes are then counted compressed, as on the wire")
	fs.StringVar(&jsonOut, "json", "", "write the result as JSON to this file")
	fs.StringVar(&label, "label", "", "server label recorded in the JSON (e.g. tern, dovecot)")
	fs.StringVar(&sizes, "sizes", "2048,30720,512000", "append: small,medium,large message sizes in bytes")
	cpuProfile := fs.String("cpuprofile", "", "write ternbench's own CPU profile to this file (the load generator's cost, not the server's)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	o.seed = seed
	o.addr = net.JoinHostPort(host, strconv.Itoa(port))
	if *appendPort != 0 {
		o.appendAddr = net.JoinHostPort(host, strconv.Itoa(*appendPort))
	}
	if o.password == "" {
		o.password = os.Getenv("TERNBENCH_PASSWORD")
	}
	if o.duration <= 0 || o.duration > time.Hour {
		fmt.Fprintln(stderr, "ternbench: --duration must be in (0, 1h]")
		return 2
	}
	if o.concurrency < 1 || o.users < 1 || o.conns < 1 {
		fmt.Fprintln(stderr, "ternbench: --concurrency, --users and --conns must be at least 1")
		return 2
	}
	if o.insecure && !isLoopback(host) {
		fmt.Fprintln(stderr, "ternbench: --insecure is only allowed for loopback hosts")
		return 2
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1024 {
			fmt.Fprintf(stderr, "ternbench: bad --sizes %q\n", sizes)
			return 2
		}
		o.sizes = append(o.sizes, n)
	}
	if len(o.sizes) != 3 {
		fmt.Fprintln(stderr, "ternbench: --sizes needs three sizes")
		return 2
	}
	workload := fs.Arg(0)
	// The whole run, setup included, is bounded.
	ctx, cancel := context.WithTimeout(ctx, o.duration+10*time.Minute)
	defer cancel()

	res := &result{Workload: workload, Label: label, Addr: o.addr, TLS: o.tls, Compress: o.compress, Concurrency: o.concurrency, Started: time.Now().UTC()}
	var mon *procMonitor
	if o.serverPID > 0 {
		var err error
		if mon, err = startMonitor(o.serverPID, time.Second); err != nil {
			fmt.Fprintf(stderr, "ternbench: %v\n", err)
			return 1
		}
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "ternbench: %v\n", err)
			return 1
		}
		defer stop()
	}
	var timed TimedCPU
	if o.serverPID > 0 {
		o.timedPhase = timed.phase(o.serverPID)
	}
	cpu0 := selfCPUSeconds()
	err := runWorkload(ctx, &o, workload, res)
	res.ClientCPUSeconds = selfCPUSeconds() - cpu0
	if timed.ran {
		ops := 0
		for _, op := range res.Ops {
			ops += op.Count
		}
		timed.perOp(ops)
		res.TimedCPU = &timed
	}
	if mon != nil {
		s := mon.finish()
		res.Server = &s
	}
	if err != nil {
		res.Error = err.Error()
	}
	printResult(stdout, res)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if werr := os.WriteFile(jsonOut, append(b, '\n'), 0o644); werr != nil {
			fmt.Fprintf(stderr, "ternbench: write %s: %v\n", jsonOut, werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "ternbench: %s: %v\n", workload, err)
		return 1
	}
	return 0
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func runWorkload(ctx context.Context, o *options, workload string, res *result) error {
	pools := func() *appendPools {
		s, m, l := appendPool(o)
		return &appendPools{s, m, l}
	}
	var rec *recorder
	var el time.Duration
	var err error
	switch workload {
	case "seed":
		return seedMailboxes(ctx, o, res)
	case "idle-fanout":
		return idleFanout(ctx, o, res)
	case "qresync", "qresync-seed": // qresync.go
		return qresyncWorkload(ctx, o, workload, res)
	case "failover": // failover.go
		return failoverWorkload(ctx, o, res)
	case "sync-headers":
		rec, el, err = bench(ctx, o, func(ctx context.Context, i int) (worker, error) {
			c, err := o.connect(ctx, i)
			if err != nil {
				return nil, err
			}
			w := &syncWorker{c: c, box: "INBOX"}
			// One untimed warm-up pass (fills any server-side caches).
			if err := w.op(ctx, newRecorder()); err != nil {
				c.Close()
				return nil, err
			}
			return w, nil
		})
	case "read":
		rec, el, err = bench(ctx, o, func(ctx context.Context, i int) (worker, error) {
			c, err := o.connect(ctx, i)
			if err != nil {
				return nil, err
			}
			si, err := c.selectMailbox("INBOX", false)
			if err != nil || si.uidNext < 2 {
				c.Close()
				return nil, fmt.Errorf("select INBOX: empty or %v", err)
			}
			return &readWorker{c: c, r: rand.New(rand.NewPCG(o.seed, uint64(i))), maxU: si.uidNext - 1}, nil
		})
	case "append":
		p := pools()
		rec, el, err = bench(ctx, o, func(ctx context.Context, i int) (worker, error) {
			c, err := o.connect(ctx, i)
			if err != nil {
				return nil, err
			}
			c.cmd(nil, `CREATE "bench-append"`) // may exist
			return &appendWorker{c: c, r: rand.New(rand.NewPCG(o.seed, uint64(i))), p: p, box: "bench-append"}, nil
		})
	case "search":
		rec, el, err = bench(ctx, o, func(ctx context.Context, i int) (worker, error) {
			c, err := o.connect(ctx, i)
			if err != nil {
				return nil, err
			}
			if _, err := c.selectMailbox("INBOX", true); err != nil {
				c.Close()
				return nil, err
			}
			w := &searchWorker{c: c, r: rand.New(rand.NewPCG(o.seed, uint64(i)))}
			for range 3 { // warm-up: one of each kind
				if err := w.op(ctx, newRecorder()); err != nil {
					c.Close()
					return nil, err
				}
			}
			return w, nil
		})
	case "flags":
		var idleRecs []*recorder
		newIdleRec := func() *recorder { r := newRecorder(); idleRecs = append(idleRecs, r); return r }
		var mu = make(chan struct{}, 1)
		rec, el, err = bench(ctx, o, func(ctx context.Context, i int) (worker, error) {
			mu <- struct{}{}
			defer func() { <-mu }()
			return newFlagsWorker(ctx, o, i, newIdleRec)
		})
		if rec != nil {
			for _, r := range idleRecs { // workers are closed: idlers have stopped
				rec.merge(r)
			}
		}
	case "mixed":
		p := pools()
		rec, el, err = bench(ctx, o, func(ctx context.Context, i int) (worker, error) {
			return newMixedWorker(ctx, o, i, p)
		})
	case "logins":
		rec, el, err = benchLogins(ctx, o)
	default:
		return fmt.Errorf("unknown workload %q", workload)
	}
	if rec == nil {
		return err
	}
	res.Seconds = el.Seconds()
	res.Ops = rec.summary(el)
	switch workload {
	case "sync-headers":
		f := findOp(res.Ops, "fetch")
		res.Primary, res.Value, res.HigherBetter = "messages/s", f.ItemsPerSec, true
		res.Extra = map[string]float64{"fetch_p50_ms": f.P50ms, "messages_per_fetch": float64(f.Items) / float64(max(f.Count, 1)),
			"wire_kib_per_fetch": float64(f.Bytes) / 1024 / float64(max(f.Count, 1))}
	case "read":
		f := findOp(res.Ops, "fetch-body")
		res.Primary, res.Value, res.HigherBetter = "ops/s", f.OpsPerSec, true
		res.Extra = map[string]float64{"mb_per_sec": f.MBPerSec}
	case "append":
		_, ps := sumOps(res.Ops, "append-small", "append-medium", "append-large")
		res.Primary, res.Value, res.HigherBetter = "messages/s", ps, true
	case "logins":
		res.Primary, res.Value, res.HigherBetter = "logins/s", findOp(res.Ops, "login").OpsPerSec, true
	case "flags":
		_, ps := sumOps(res.Ops, "store", "copy", "expunge")
		n := findOp(res.Ops, "notify")
		res.Primary, res.Value, res.HigherBetter = "ops/s", ps, true
		res.Extra = map[string]float64{"notify_p50_ms": n.P50ms, "notify_p99_ms": n.P99ms}
	default:
		var total float64
		for _, op := range res.Ops {
			total += op.OpsPerSec
		}
		res.Primary, res.Value, res.HigherBetter = "ops/s", total, true
	}
	return err
}

func printResult(w io.Writer, r *result) {
	fmt.Fprintf(w, "%s %s c=%d %.1fs: %s = %.2f\n", r.Label, r.Workload, r.Concurrency, r.Seconds, r.Primary, r.Value)
	for _, op := range r.Ops {
		fmt.Fprintf(w, "  %-16s n=%-7d err=%-4d %9.1f ops/s", op.Op, op.Count, op.Errors, op.OpsPerSec)
		if op.MBPerSec > 0 {
			fmt.Fprintf(w, " %8.2f MB/s", op.MBPerSec)
		}
		fmt.Fprintf(w, "  p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms\n", op.P50ms, op.P99ms, op.Maxms)
	}
	for k, v := range r.Extra {
		fmt.Fprintf(w, "  %s = %.2f\n", k, v)
	}
	if r.Server != nil {
		fmt.Fprintf(w, "  server: %d procs, %.2f CPU s, peak RSS %d KiB\n", r.Server.Procs, r.Server.CPUSeconds, r.Server.PeakRSSKiB)
	}
	fmt.Fprintf(w, "  client: %.2f CPU s\n", r.ClientCPUSeconds)
	if t := r.TimedCPU; t != nil {
		fmt.Fprintf(w, "  timed loop: server %.2f CPU s (%.0f µs/op), client %.2f CPU s (%.0f µs/op)\n",
			t.ServerSeconds, t.ServerUsPerOp, t.ClientSeconds, t.ClientUsPerOp)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
}
