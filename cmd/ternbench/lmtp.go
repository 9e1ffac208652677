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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// The lmtp workload measures LMTP (RFC 2033) delivery throughput: each of
// --concurrency connections says LHLO once, then delivers messages one
// after another (MAIL FROM, RCPT TO, DATA), each to one recipient; the
// recipients rotate over --users. Message bodies are deterministic (same
// --seed and --size: byte-identical mail), so two servers get the same
// messages. It reports messages/s and per-message latency.

const lmtpUsage = `ternbench lmtp: LMTP delivery load generator

Usage:
  ternbench lmtp [flags]

Each of --concurrency connections sends LHLO once, then MAIL FROM / RCPT TO /
DATA per message (one recipient, rotating over --users), until --duration
ends or --count messages were started. Reports messages/s and p50/p99 latency
of one whole transaction (MAIL FROM to the per-recipient DATA reply).

Flags:
`

// lmtpMain is the entry point of "ternbench lmtp".
func lmtpMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ternbench lmtp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, lmtpUsage)
		fs.PrintDefaults()
	}
	var o options
	var lo lmtpOptions
	var host, jsonOut, label string
	var port int
	fs.StringVar(&host, "host", "127.0.0.1", "server host")
	fs.IntVar(&port, "port", 24, "server LMTP port")
	fs.StringVar(&lo.unix, "unix", "", "connect to this unix socket instead of host:port")
	fs.StringVar(&o.userPattern, "rcpt", "user%d@example.org", "recipient address or pattern with %d")
	fs.IntVar(&o.users, "users", 1, "number of recipients the pattern expands to")
	fs.IntVar(&o.firstUser, "first-user", 1, "first number for the recipient pattern")
	fs.StringVar(&lo.from, "from", "bench@example.net", "envelope sender")
	fs.StringVar(&lo.lhlo, "lhlo", "ternbench.localhost", "name sent with LHLO")
	fs.IntVar(&lo.size, "size", 4096, "message size in bytes (approximate; at least 1024)")
	fs.IntVar(&lo.pool, "pool", 32, "distinct messages generated per run (cycled)")
	fs.IntVar(&lo.newWords, "new-words", 0, "append a line of this many random words to each message's text (words no message had before, like the ids and codes of real mail)")
	fs.IntVar(&o.concurrency, "concurrency", 1, "concurrent LMTP connections")
	fs.Int64Var(&o.count, "count", 0, "stop after this many messages (0: only the duration bounds)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (always bounded; at most 1h)")
	fs.Uint64Var(&o.seed, "seed", 1, "PRNG seed for generated messages")
	fs.IntVar(&o.serverPID, "server-pid", 0, "server process id: report its (tree's) CPU seconds and RSS from /proc")
	fs.StringVar(&jsonOut, "json", "", "write the result as JSON to this file")
	fs.StringVar(&label, "label", "", "server label recorded in the JSON (e.g. tern, dovecot)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	switch {
	case o.duration <= 0 || o.duration > time.Hour:
		fmt.Fprintln(stderr, "ternbench lmtp: --duration must be in (0, 1h]")
		return 2
	case o.concurrency < 1 || o.users < 1 || lo.pool < 1:
		fmt.Fprintln(stderr, "ternbench lmtp: --concurrency, --users and --pool must be at least 1")
		return 2
	case lo.newWords < 0 || lo.newWords > 10000:
		fmt.Fprintln(stderr, "ternbench lmtp: --new-words must be in [0, 10000]")
		return 2
	case lo.newWords > 0 && lo.size > maxPlainSize:
		// Larger messages are multipart: words after the last boundary
		// would be an epilogue no text part covers.
		fmt.Fprintf(stderr, "ternbench lmtp: --new-words needs --size of at most %d (a text/plain message)\n", maxPlainSize)
		return 2
	case lo.size < 1024 || lo.size > 64<<20:
		fmt.Fprintln(stderr, "ternbench lmtp: --size must be in [1024, 64 MiB]")
		return 2
	case lo.unix == "" && !isLoopback(host):
		// A load generator: keep it off other people's servers by mistake.
		fmt.Fprintln(stderr, "ternbench lmtp: only loopback hosts (or --unix) are allowed")
		return 2
	}
	o.addr = net.JoinHostPort(host, strconv.Itoa(port))
	if lo.unix != "" {
		o.addr = "unix:" + lo.unix
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration+2*time.Minute)
	defer cancel()

	res := &result{Workload: "lmtp", Label: label, Addr: o.addr, Concurrency: o.concurrency, Started: time.Now().UTC()}
	var mon *procMonitor
	if o.serverPID > 0 {
		var err error
		if mon, err = startMonitor(o.serverPID, time.Second); err != nil {
			fmt.Fprintf(stderr, "ternbench lmtp: %v\n", err)
			return 1
		}
	}
	err := runLMTP(ctx, &o, &lo, res)
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
			fmt.Fprintf(stderr, "ternbench lmtp: write %s: %v\n", jsonOut, werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "ternbench lmtp: %v\n", err)
		return 1
	}
	return 0
}

type lmtpOptions struct {
	unix     string
	from     string
	lhlo     string
	size     int
	pool     int
	newWords int
}

// lmtpPool returns n deterministic messages of about size bytes.
func lmtpPool(seed uint64, size, n int) [][]byte {
	g := newGenerator(seed+2000, 11)
	pool := make([][]byte, n)
	for i := range pool {
		pool[i] = g.sized(size)
	}
	return pool
}

// runLMTP runs the workload and fills res.
func runLMTP(ctx context.Context, o *options, lo *lmtpOptions, res *result) error {
	pool := lmtpPool(o.seed, lo.size, lo.pool)
	var total int
	for _, m := range pool {
		total += len(m)
	}
	rec, el, err := bench(ctx, o, func(ctx context.Context, i int) (worker, error) {
		c, err := dialLMTP(ctx, o.addr, lo.lhlo)
		if err != nil {
			return nil, err
		}
		return &lmtpWorker{c: c, o: o, from: lo.from, pool: pool, i: i, next: i,
			newWords: lo.newWords, r: rand.New(rand.NewPCG(o.seed+3000, uint64(i)))}, nil
	})
	if rec == nil {
		return err
	}
	res.Seconds = el.Seconds()
	res.Ops = rec.summary(el)
	d := findOp(res.Ops, "deliver")
	res.Primary, res.Value, res.HigherBetter = "messages/s", d.OpsPerSec, true
	res.Extra = map[string]float64{
		"deliver_p50_ms":    d.P50ms,
		"deliver_p99_ms":    d.P99ms,
		"message_bytes_avg": float64(total)/float64(len(pool)) + newWordsBytes(lo.newWords),
	}
	return err
}

// dialLMTP connects ("unix:/path" or host:port), reads the greeting and
// sends LHLO.
func dialLMTP(ctx context.Context, addr, lhlo string) (*smtp.Client, error) {
	network := "tcp"
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nc, err := d.DialContext(dctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial lmtp %s: %w", addr, err)
	}
	c := smtp.NewClientLMTP(nc)
	c.CommandTimeout = time.Minute
	c.SubmissionTimeout = 2 * time.Minute
	if err := c.Hello(lhlo); err != nil {
		c.Close()
		return nil, fmt.Errorf("lmtp %s: LHLO: %w", addr, err)
	}
	return c, nil
}

type lmtpWorker struct {
	c    *smtp.Client
	o    *options
	from string
	pool [][]byte
	i    int // worker number
	next int // next message (and recipient) number
	// newWords random words end each message (--new-words), from r.
	newWords int
	r        *rand.Rand
}

// op delivers one message to one recipient and waits for its DATA reply.
func (w *lmtpWorker) op(ctx context.Context, rec *recorder) error {
	n := w.next
	w.next += w.o.concurrency // workers interleave: message k goes to worker k mod concurrency
	msg := w.pool[n%len(w.pool)]
	if w.newWords > 0 {
		msg = appendNewWords(slices.Clip(msg), w.r, w.newWords)
	}
	rcpt := w.o.user(n)
	t0 := time.Now()
	if err := w.deliver(rcpt, msg); err != nil {
		rec.fail("deliver")
		return fmt.Errorf("deliver to %s: %w", rcpt, err)
	}
	rec.add("deliver", time.Since(t0), 1, int64(len(msg)))
	return nil
}

// newWordsBytes is the mean size appendNewWords adds for n words.
func newWordsBytes(n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(n)*11 - 1 + 2 // 10 bytes a word on average, n-1 spaces, CRLF
}

// appendNewWords returns msg (a text/plain message ending in CRLF) with
// a last line of n random words of 8 to 12 lowercase letters and digits:
// with 36^8 or more spellings each, every one is new to the index's
// vocabulary.
func appendNewWords(msg []byte, r *rand.Rand, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range n {
		if i > 0 {
			msg = append(msg, ' ')
		}
		for range 8 + r.IntN(5) {
			msg = append(msg, alphabet[r.IntN(len(alphabet))])
		}
	}
	return append(msg, "\r\n"...)
}

func (w *lmtpWorker) deliver(rcpt string, msg []byte) error {
	if err := w.c.Mail(w.from, nil); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := w.c.Rcpt(rcpt, nil); err != nil {
		w.c.Reset()
		return fmt.Errorf("RCPT TO: %w", err)
	}
	dc, err := w.c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := dc.Write(msg); err != nil {
		dc.Close()
		return fmt.Errorf("DATA body: %w", err)
	}
	// One recipient: one reply, which must be 250.
	if _, err := dc.CloseWithLMTPResponse(); err != nil {
		return fmt.Errorf("DATA reply: %w", err)
	}
	return nil
}

func (w *lmtpWorker) close() {
	w.c.Quit()
	w.c.Close()
}
