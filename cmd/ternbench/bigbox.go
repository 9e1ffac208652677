package main

// The bigbox workload (issue 9): everyday commands on one very large
// INBOX, tern against another server holding the same messages.
//
//	ternbench bigbox gen --messages N --out DIR             a Maildir (with dovecot-uidlist) of N messages
//	ternbench bigbox gen --format mbox --messages N --out F  the same messages as one mbox file
//	ternbench bigbox run --port P --label tern --round R     one measured pass: one line per command
//	ternbench bigbox table FILE...                           medians and ratios of the lines in FILEs
//
// gen writes the mail directly (no IMAP), so a mailbox of 100,000 or
// 1,000,000 messages is filled in seconds to minutes: tern imports the
// Maildir with `tern import`, and Dovecot uses it as its INBOX as it is.
// The dovecot-uidlist file fixes the UIDs (1..N in generation order) for
// both. The messages are the generator's realistic mail with smaller
// attachments (about 6 KB on average), with flags like a used INBOX:
// about 90 % \Seen (the newest 1 % all unseen), 15 % \Answered, 2 %
// \Flagged.
//
// run logs in as --user, sends ENABLE CONDSTORE (as modern clients do)
// and times, in this order (each from sending the command to its tagged
// OK; bytes are what the server sent for it):
//
//	status          STATUS INBOX (MESSAGES UNSEEN UIDNEXT HIGHESTMODSEQ), after one untimed STATUS (warm)
//	select          SELECT INBOX
//	fetch-flags     UID FETCH 1:* (FLAGS)
//	fetch-body-20   20 x UID FETCH n BODY.PEEK[] (random n; one sample is all 20)
//	search-unseen   UID SEARCH UNSEEN
//	changedsince    UID FETCH 1:* (FLAGS) (CHANGEDSINCE m), m = HIGHESTMODSEQ of the SELECT, after this
//	                session flipped \Flagged on 10 messages (untimed UID STORE ... .SILENT)
//	store-1000      UID STORE a:b +FLAGS.SILENT (\Flagged) then UID STORE a:b -FLAGS.SILENT (\Flagged)
//	                on 1,000 consecutive UIDs (one sample is both commands)
//	store-single    the same change one UID per command: UID STORE n +FLAGS.SILENT (\Flagged) for
//	                each of another 100 (--singles) consecutive UIDs, then -FLAGS.SILENT for each
//	                (200 commands, one after another; one sample is all of them)
//	sort            UID SORT (REVERSE DATE) UTF-8 ALL
//	thread          UID THREAD REFERENCES UTF-8 ALL
//
// and prints one line per command:
//
//	bigbox label=tern round=1 cmd=select ms=12.345 items=100000 bytes=321 cpu_ms=10
//
// items is what the command returned (messages, UIDs); cpu_ms is the
// server's CPU time (utime+stime+cutime+cstime of --server-pid and its descendants,
// 10 ms ticks) during the command, and disk_kib what they read from the
// disk meanwhile (read_bytes: page cache misses), when --server-pid is
// given.
//
// Before each timed command that follows a flag change (changedsince,
// store-1000, store-single, sort) and before the timed STATUS (after the
// warming one) the pass waits --settle (1.5 s): Dovecot
// rescans a Maildir's cur/ on every sync while cur/'s mtime is less than
// a second old (MAILDIR_SYNC_SECS in maildir-sync.c), and a flag change
// renames a file there. The pause measures each command in the steady
// state instead of charging it the rescan its predecessor caused
// (--settle 0 to include it; store-single pays it within itself either way).
// An untimed CAPABILITY follows the pause: on a virtual machine the first
// command after an idle spell pays the wake-up of idle CPUs (here a NOOP
// after 1.5 s idle took about 1.1 ms, against 0.1 ms back to back), which
// is the pause's, not the timed command's. CAPABILITY makes neither server
// look at a mailbox.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bigboxCmds are the measured commands in order, with what they send.
var bigboxCmds = []struct{ name, text string }{
	{"status", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT HIGHESTMODSEQ)"},
	{"select", "SELECT INBOX"},
	{"fetch-flags", "UID FETCH 1:* (FLAGS)"},
	{"fetch-body-20", "20 × UID FETCH n BODY.PEEK[]"},
	{"search-unseen", "UID SEARCH UNSEEN"},
	{"changedsince", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE m) after 10 flag changes"},
	{"store-1000", "UID STORE +FLAGS.SILENT then -FLAGS.SILENT (\\Flagged) on 1,000 UIDs"},
	{"store-single", "100 × UID STORE n +FLAGS.SILENT, then 100 × -FLAGS.SILENT (one UID per command)"},
	{"sort", "UID SORT (REVERSE DATE) UTF-8 ALL"},
	{"thread", "UID THREAD REFERENCES UTF-8 ALL"},
}

const bigboxUsage = `ternbench bigbox: everyday commands on one large INBOX

Usage:
  ternbench bigbox gen [--format maildir|mbox] --messages N --out PATH [--seed S]
  ternbench bigbox run --port P --password PW [--user U] [--label L] [--round R] [--server-pid PID]
  ternbench bigbox table [--first tern] FILE...

gen writes N deterministic messages as a Maildir (cur/ plus dovecot-uidlist,
UIDs 1..N) or an mbox file. run makes one measured pass over the commands
(STATUS, SELECT, UID FETCH 1:* FLAGS, 20 BODY.PEEK[], SEARCH UNSEEN,
CHANGEDSINCE after 10 changes, STORE on 1,000 UIDs in one command and in
100 single-UID commands, SORT, THREAD) and prints
one "bigbox label=.. round=.. cmd=.. ms=.." line per command. table prints
the median per command and server and the speed ratio.

Flags:
`

// bigboxMain is the entry point of "ternbench bigbox".
func bigboxMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, strings.TrimSuffix(bigboxUsage, "Flags:\n"))
		return 2
	}
	switch args[0] {
	case "gen":
		return bigboxGenMain(args[1:], stdout, stderr)
	case "run":
		return bigboxRunMain(ctx, args[1:], stdout, stderr)
	case "table":
		return bigboxTableMain(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, strings.TrimSuffix(bigboxUsage, "Flags:\n"))
		return 0
	}
	fmt.Fprintf(stderr, "ternbench bigbox: unknown mode %q (gen, run or table)\n", args[0])
	return 2
}

// ---- gen ----

// bigboxMsg is one generated message with its flags and INTERNALDATE.
type bigboxMsg struct {
	body                    []byte // CRLF
	seen, answered, flagged bool
	date                    time.Time
}

// bigboxGen produces the bigbox mailbox's messages in UID order.
type bigboxGen struct {
	g     *generator
	flags *rand.Rand
	n     int // messages in the mailbox
	i     int // messages produced
}

func newBigboxGen(seed uint64, n int) *bigboxGen {
	return &bigboxGen{g: newGenerator(seed, 0xb16b0c), flags: rand.New(rand.NewPCG(seed, 0xf1a95)), n: n}
}

func (b *bigboxGen) next() bigboxMsg {
	g, r := b.g, b.g.r
	var body []byte
	switch x := r.IntN(100); {
	case x < 65: // plain text
		body = g.message(512+r.IntN(3584), 0, false)
	case x < 90: // text + HTML
		body = g.message(1024+r.IntN(3072), 0, true)
	default: // a small attachment
		body = g.message(512+r.IntN(2048), 4096+r.IntN(20480), r.IntN(2) == 0)
	}
	m := bigboxMsg{body: plantSearchWords(body, b.i)}
	// The Date header is base + n*47min + <1h; arrival a little later.
	m.date = g.base.Add(time.Duration(g.n)*47*time.Minute + time.Hour + time.Duration(b.flags.IntN(600))*time.Second)
	newest := b.i >= b.n-b.n/100
	m.seen = !newest && b.flags.IntN(100) >= 9
	m.answered = m.seen && b.flags.IntN(100) < 15
	m.flagged = b.flags.IntN(100) < 2
	b.i++
	return m
}

// Words planted for the search commands, with known counts: message i
// (0-based) gets searchRare in its text when i%1000 == 500, searchSubject
// at the start of its Subject when i%2000 == 1000, a From of searchFrom
// when i%2500 == 1250, and searchCommon in its text when i is even.
// searchMiss is in no message.
const (
	searchRare    = "zephyrine"
	searchSubject = "quetzalcoatl"
	searchFrom    = "Ottoline Fairweather"
	searchCommon  = "halfmoon"
	searchMiss    = "nowhereatall"
)

// plantSearchWords plants the search words into generated message i.
// The text goes after "Hello " (the greeting of the text part and of the
// HTML alternative; base64 attachments hold no space).
func plantSearchWords(body []byte, i int) []byte {
	var text []string
	if i%1000 == 500 {
		text = append(text, searchRare)
	}
	if i%2 == 0 {
		text = append(text, searchCommon)
	}
	if len(text) > 0 {
		body = bytes.ReplaceAll(body, []byte("Hello "), []byte("Hello "+strings.Join(text, " ")+" "))
	}
	if i%2000 == 1000 {
		body = bytes.Replace(body, []byte("\r\nSubject: "), []byte("\r\nSubject: "+searchSubject+" "), 1)
	}
	if i%2500 == 1250 {
		body = bytes.Replace(body, []byte("\r\nFrom: "), []byte("\r\nFrom: "+searchFrom+" <ottoline.fairweather@example.net>\r\nX-Original-From: "), 1)
	}
	return body
}

// bigboxSearches are the search commands of run --search: the planted
// words (see plantSearchWords).
var bigboxSearches = []struct{ name, text string }{
	{"search-body-rare", "UID SEARCH BODY " + searchRare},
	{"search-text-rare", "UID SEARCH TEXT " + searchRare},
	{"search-from", `UID SEARCH FROM "` + searchFrom + `"`},
	{"search-subject", "UID SEARCH SUBJECT " + searchSubject},
	{"search-miss", "UID SEARCH BODY " + searchMiss},
	{"search-common", "UID SEARCH BODY " + searchCommon},
}

// bigboxFuzzySearches are the search commands of run --commands fuzzy:
// SEARCH=FUZZY (RFC 6203) with a typo in each planted word, answered
// with ESEARCH RETURN (COUNT).
var bigboxFuzzySearches = []struct{ name, text string }{
	{"fuzzy-body-rare", "UID SEARCH RETURN (COUNT) FUZZY BODY zefyrine"},
	{"fuzzy-from", `UID SEARCH RETURN (COUNT) FUZZY FROM "Ottoline Fairwether"`},
	{"fuzzy-subject", "UID SEARCH RETURN (COUNT) FUZZY SUBJECT quetzalcoat"},
	{"fuzzy-common", "UID SEARCH RETURN (COUNT) FUZZY BODY halfmon"},
}

// maildirInfo is the ":2," flag letters of m (sorted, as Dovecot writes them).
func (m bigboxMsg) maildirInfo() string {
	s := ""
	if m.flagged {
		s += "F"
	}
	if m.answered {
		s += "R"
	}
	if m.seen {
		s += "S"
	}
	return s
}

func bigboxGenMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ternbench bigbox gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("messages", 100000, "messages to generate")
	out := fs.String("out", "", "Maildir directory (created) or mbox file to write")
	format := fs.String("format", "maildir", "maildir or mbox")
	seed := fs.Uint64("seed", 1, "PRNG seed (same seed: byte-identical messages)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *out == "" || *n < 1 || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "ternbench bigbox gen: need --out and --messages >= 1")
		return 2
	}
	t0 := time.Now()
	var bytes int64
	var err error
	switch *format {
	case "maildir":
		bytes, err = writeBigboxMaildir(*out, *n, *seed)
	case "mbox":
		bytes, err = writeBigboxMbox(*out, *n, *seed)
	default:
		fmt.Fprintf(stderr, "ternbench bigbox gen: unknown --format %q\n", *format)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "ternbench bigbox gen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "bigbox gen format=%s messages=%d bytes=%d seconds=%.1f\n", *format, *n, bytes, time.Since(t0).Seconds())
	return 0
}

// writeBigboxMaildir writes dir/{cur,new,tmp} with n messages in cur/ and
// a dovecot-uidlist that gives them UIDs 1..n in order. File names are
// "<time>.M<i>P1.bigbox,S=<size>,W=<size>:2,<flags>" (the messages are
// CRLF, so the size is also the RFC822.SIZE); the mtime is the
// INTERNALDATE.
func writeBigboxMaildir(dir string, n int, seed uint64) (int64, error) {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return 0, err
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "cur")); len(ents) > 0 {
		return 0, fmt.Errorf("%s/cur is not empty", dir)
	}
	uf, err := os.Create(filepath.Join(dir, "dovecot-uidlist"))
	if err != nil {
		return 0, err
	}
	defer uf.Close()
	uw := bufio.NewWriterSize(uf, 1<<20)
	guid := sha256.Sum256([]byte(fmt.Sprintf("bigbox %d %d", seed, n)))
	fmt.Fprintf(uw, "3 V%d N%d G%s\n", 1700000000+seed%1000000, n+1, hex.EncodeToString(guid[:16]))
	b := newBigboxGen(seed, n)
	var total int64
	for i := 1; i <= n; i++ {
		m := b.next()
		name := fmt.Sprintf("%d.M%dP1.bigbox,S=%d,W=%d:2,%s", m.date.Unix(), i, len(m.body), len(m.body), m.maildirInfo())
		p := filepath.Join(dir, "cur", name)
		if err := os.WriteFile(p, m.body, 0o644); err != nil {
			return total, err
		}
		if err := os.Chtimes(p, m.date, m.date); err != nil {
			return total, err
		}
		// The full current name, as Dovecot records a saved message: with
		// only the base name it would not find the file at first and
		// rescan cur/ on every lookup.
		fmt.Fprintf(uw, "%d :%s\n", i, name)
		total += int64(len(m.body))
		if i%100000 == 0 {
			fmt.Fprintf(os.Stderr, "bigbox gen: %d messages\n", i)
		}
	}
	if err := uw.Flush(); err != nil {
		return total, err
	}
	return total, uf.Close()
}

// writeBigboxMbox writes the same messages as an mboxrd file (LF line
// endings, Status/X-Status headers for the flags).
func writeBigboxMbox(path string, n int, seed uint64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	b := newBigboxGen(seed, n)
	var total int64
	for i := 0; i < n; i++ {
		m := b.next()
		body := bytes.ReplaceAll(m.body, []byte("\r\n"), []byte("\n"))
		hdrEnd := bytes.Index(body, []byte("\n\n"))
		fmt.Fprintf(w, "From bigbox@example.net %s\n", m.date.UTC().Format("Mon Jan _2 15:04:05 2006"))
		w.Write(body[:hdrEnd+1])
		status := "O"
		if m.seen {
			status = "RO"
		}
		fmt.Fprintf(w, "Status: %s\n", status)
		if x := strings.ReplaceAll(strings.ReplaceAll(m.maildirInfo(), "S", ""), "R", "A"); x != "" {
			fmt.Fprintf(w, "X-Status: %s\n", x)
		}
		for _, line := range bytes.SplitAfter(body[hdrEnd+1:], []byte("\n")) {
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				w.WriteByte('>')
			}
			w.Write(line)
		}
		if !bytes.HasSuffix(body, []byte("\n")) {
			w.WriteByte('\n')
		}
		w.WriteByte('\n')
		total += int64(len(m.body))
	}
	if err := w.Flush(); err != nil {
		return total, err
	}
	return total, f.Close()
}

// ---- run ----

type bigboxRunOpts struct {
	o         options
	label     string
	round     int
	bodies    int
	changes   int
	stores    int
	singles   int
	timeout   time.Duration
	settle    time.Duration
	serverPID int
	commands  string // everyday, search or all
}

func bigboxRunMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ternbench bigbox run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var b bigboxRunOpts
	var host string
	var port int
	fs.StringVar(&host, "host", "127.0.0.1", "server host")
	fs.IntVar(&port, "port", 143, "server port")
	fs.BoolVar(&b.o.tls, "tls", false, "implicit TLS (IMAPS)")
	fs.BoolVar(&b.o.insecure, "insecure", false, "skip certificate verification (loopback hosts only)")
	fs.StringVar(&b.o.userPattern, "user", "user1", "user name")
	fs.StringVar(&b.o.password, "password", "", "password (or env TERNBENCH_PASSWORD)")
	fs.Uint64Var(&b.o.seed, "seed", 1, "PRNG seed for the random choices (with --round)")
	fs.StringVar(&b.label, "label", "server", "server label printed on every line")
	fs.IntVar(&b.round, "round", 1, "round number (printed; picks the random UIDs)")
	fs.IntVar(&b.bodies, "bodies", 20, "BODY.PEEK[] fetches in fetch-body-20")
	fs.IntVar(&b.changes, "changes", 10, "flag changes before the CHANGEDSINCE fetch")
	fs.IntVar(&b.stores, "stores", 1000, "UIDs of the STORE pair (store-1000)")
	fs.IntVar(&b.singles, "singles", 100, "UIDs stored one per command (store-single)")
	fs.DurationVar(&b.timeout, "timeout", 15*time.Minute, "bound on the whole pass")
	fs.DurationVar(&b.settle, "settle", 1500*time.Millisecond, "pause before a timed command that follows flag changes")
	fs.IntVar(&b.serverPID, "server-pid", 0, "server process id: report its (tree's) CPU time per command")
	fs.StringVar(&b.commands, "commands", "everyday", "what to time: everyday (the list above), search (the planted-word searches), fuzzy (the same words with typos, SEARCH=FUZZY), or all")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if b.commands != "everyday" && b.commands != "search" && b.commands != "fuzzy" && b.commands != "all" {
		fmt.Fprintln(stderr, "ternbench bigbox run: --commands must be everyday, search, fuzzy or all")
		return 2
	}
	if fs.NArg() != 0 || b.bodies < 1 || b.changes < 1 || b.stores < 1 || b.singles < 1 || b.timeout <= 0 || b.settle < 0 {
		fmt.Fprintln(stderr, "ternbench bigbox run: bad arguments (see -h)")
		return 2
	}
	if b.o.insecure && !isLoopback(host) {
		fmt.Fprintln(stderr, "ternbench bigbox run: --insecure is only allowed for loopback hosts")
		return 2
	}
	if b.o.password == "" {
		b.o.password = os.Getenv("TERNBENCH_PASSWORD")
	}
	b.o.addr = net.JoinHostPort(host, strconv.Itoa(port))
	b.o.users = 1
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := bigboxRun(ctx, &b, stdout); err != nil {
		fmt.Fprintf(stderr, "ternbench bigbox run: %s round %d: %v\n", b.label, b.round, err)
		return 1
	}
	return 0
}

// settleDown waits b.settle, then wakes both ends with an untimed
// CAPABILITY (the package comment says why).
func (b *bigboxRunOpts) settleDown(c *client) error {
	time.Sleep(b.settle)
	return c.cmd(nil, "CAPABILITY")
}

// bigboxRun makes one pass and prints one line per command.
func bigboxRun(ctx context.Context, b *bigboxRunOpts, out io.Writer) error {
	c, err := b.o.connect(ctx, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(d)
	}
	if err := c.cmd(nil, "ENABLE CONDSTORE"); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(b.o.seed, uint64(b.round)))
	// measure runs f as command name and prints its line.
	measure := func(name string, f func() (items int, err error)) error {
		var cpu0 procSample
		if b.serverPID > 0 {
			cpu0, _ = sampleTree(b.serverPID)
		}
		b0, t0 := c.bytesIn, time.Now()
		items, err := f()
		d, nb := time.Since(t0), c.bytesIn-b0
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		line := fmt.Sprintf("bigbox label=%s round=%d cmd=%s ms=%.3f items=%d bytes=%d", b.label, b.round, name, ms(d), items, nb)
		if b.serverPID > 0 {
			if cpu1, err := sampleTree(b.serverPID); err == nil {
				line += fmt.Sprintf(" cpu_ms=%.0f disk_kib=%d", (cpu1.cpuSec-cpu0.cpuSec)*1000, (cpu1.diskBytes-cpu0.diskBytes)>>10)
			}
		}
		fmt.Fprintln(out, line)
		return nil
	}
	countFetch := func(n *int) func([]byte) {
		return func(l []byte) {
			if _, ok := untaggedNum(l, "FETCH"); ok {
				*n++
			}
		}
	}

	if b.commands == "search" || b.commands == "fuzzy" {
		if _, err := c.selectCmd("SELECT INBOX", 0); err != nil {
			return err
		}
		searches := bigboxSearches
		if b.commands == "fuzzy" {
			searches = bigboxFuzzySearches
		}
		if err := bigboxSearch(c, searches, measure); err != nil {
			return err
		}
		return c.logout()
	}
	const statusCmd = "STATUS INBOX (MESSAGES UNSEEN UIDNEXT HIGHESTMODSEQ)"
	if err := c.cmd(nil, statusCmd); err != nil { // warm
		return err
	}
	// The first STATUS of a new Dovecot process catches up with the
	// previous pass's changes (and may rewrite dovecot-uidlist): settle.
	if err := b.settleDown(c); err != nil {
		return err
	}
	if err := measure("status", func() (int, error) { return 1, c.cmd(nil, statusCmd) }); err != nil {
		return err
	}
	var sel qrSelect
	if err := measure("select", func() (int, error) {
		var err error
		sel, err = c.selectCmd("SELECT INBOX", 0)
		return sel.exists, err
	}); err != nil {
		return err
	}
	if sel.modseq == 0 {
		return errors.New("SELECT after ENABLE CONDSTORE reported no HIGHESTMODSEQ")
	}
	if err := measure("fetch-flags", func() (int, error) {
		n := 0
		err := c.cmd(countFetch(&n), "UID FETCH 1:* (FLAGS)")
		return n, err
	}); err != nil {
		return err
	}
	// The UIDs (untimed), for the random choices below.
	var uids []uint32
	if err := c.cmd(func(l []byte) {
		if bytes.HasPrefix(l, []byte("* SEARCH")) {
			for _, f := range bytes.Fields(l[len("* SEARCH"):]) {
				if v, err := strconv.ParseUint(string(f), 10, 32); err == nil {
					uids = append(uids, uint32(v))
				}
			}
		}
	}, "UID SEARCH ALL"); err != nil {
		return err
	}
	if need := max(b.stores, b.singles, 2*b.changes, b.bodies); len(uids) < need {
		return fmt.Errorf("INBOX has %d messages; need at least %d", len(uids), need)
	}
	if err := measure("fetch-body-20", func() (int, error) {
		for i := 0; i < b.bodies; i++ {
			if err := c.cmd(nil, "UID FETCH %d BODY.PEEK[]", uids[r.IntN(len(uids))]); err != nil {
				return i, err
			}
		}
		return b.bodies, nil
	}); err != nil {
		return err
	}
	if err := measure("search-unseen", func() (int, error) {
		n := 0
		err := c.cmd(func(l []byte) {
			if bytes.HasPrefix(l, []byte("* SEARCH")) {
				n += len(bytes.Fields(l[len("* SEARCH"):]))
			}
		}, "UID SEARCH UNSEEN")
		return n, err
	}); err != nil {
		return err
	}

	// changedsince: flip \Flagged on b.changes messages, one in each slice
	// of the mailbox, in this session (untimed).
	changed := make([]uint32, b.changes)
	for i := range changed {
		lo, hi := i*len(uids)/b.changes, (i+1)*len(uids)/b.changes
		changed[i] = uids[lo+r.IntN(hi-lo)]
	}
	flagged := map[uint32]bool{}
	if err := c.cmd(func(l []byte) {
		if u, ok := fetchUID(l); ok {
			flagged[u] = bytes.Contains(l, []byte(`\Flagged`))
		}
	}, "UID FETCH %s (UID FLAGS)", uidList(changed)); err != nil {
		return err
	}
	for _, u := range changed {
		op := "+"
		if flagged[u] {
			op = "-"
		}
		if err := c.cmd(nil, `UID STORE %d %sFLAGS.SILENT (\Flagged)`, u, op); err != nil {
			return err
		}
	}
	if err := b.settleDown(c); err != nil {
		return err
	}
	var got []uint32
	if err := measure("changedsince", func() (int, error) {
		err := c.cmd(func(l []byte) {
			if _, ok := untaggedNum(l, "FETCH"); ok {
				if u, ok := fetchUID(l); ok {
					got = append(got, u)
				}
			}
		}, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", sel.modseq)
		n := len(got)
		return n, err
	}); err != nil {
		return err
	}
	if missing, _ := diffUIDs(got, changed); len(missing) > 0 {
		return fmt.Errorf("changedsince: the changed UIDs %v are missing from the answer", missing)
	}

	k := r.IntN(len(uids) - b.stores + 1)
	set := fmt.Sprintf("%d:%d", uids[k], uids[k+b.stores-1])
	if err := b.settleDown(c); err != nil {
		return err
	}
	if err := measure("store-1000", func() (int, error) {
		if err := c.cmd(nil, `UID STORE %s +FLAGS.SILENT (\Flagged)`, set); err != nil {
			return 0, err
		}
		return b.stores, c.cmd(nil, `UID STORE %s -FLAGS.SILENT (\Flagged)`, set)
	}); err != nil {
		return err
	}
	k = r.IntN(len(uids) - b.singles + 1)
	if err := b.settleDown(c); err != nil {
		return err
	}
	if err := measure("store-single", func() (int, error) {
		for _, op := range []string{"+", "-"} {
			for _, u := range uids[k : k+b.singles] {
				if err := c.cmd(nil, `UID STORE %d %sFLAGS.SILENT (\Flagged)`, u, op); err != nil {
					return 0, err
				}
			}
		}
		return b.singles, nil
	}); err != nil {
		return err
	}
	if err := b.settleDown(c); err != nil {
		return err
	}
	if err := measure("sort", func() (int, error) {
		n := 0
		err := c.cmd(func(l []byte) {
			if bytes.HasPrefix(l, []byte("* SORT")) {
				n += len(bytes.Fields(l[len("* SORT"):]))
			}
		}, "UID SORT (REVERSE DATE) UTF-8 ALL")
		return n, err
	}); err != nil {
		return err
	}
	if err := measure("thread", func() (int, error) {
		n := 0 // UIDs in the answer
		err := c.cmd(func(l []byte) {
			if bytes.HasPrefix(l, []byte("* THREAD")) {
				n += len(bytes.FieldsFunc(l[len("* THREAD"):], func(r rune) bool { return r < '0' || r > '9' }))
			}
		}, "UID THREAD REFERENCES UTF-8 ALL")
		return n, err
	}); err != nil {
		return err
	}
	if b.commands == "all" {
		if err := bigboxSearch(c, bigboxSearches, measure); err != nil {
			return err
		}
	}
	return c.logout()
}

// bigboxSearch times the planted-word searches (bigboxSearches); items
// is the number of UIDs found.
func bigboxSearch(c *client, searches []struct{ name, text string }, measure func(string, func() (int, error)) error) error {
	for _, s := range searches {
		if err := measure(s.name, func() (int, error) {
			n := 0
			err := c.cmd(func(l []byte) {
				if bytes.HasPrefix(l, []byte("* SEARCH")) {
					n += len(bytes.Fields(l[len("* SEARCH"):]))
				}
				if bytes.HasPrefix(l, []byte("* ESEARCH")) {
					if i := bytes.Index(l, []byte(" COUNT ")); i >= 0 {
						f := bytes.Fields(l[i+len(" COUNT "):])
						if len(f) > 0 {
							v, _ := strconv.Atoi(string(f[0]))
							n += v
						}
					}
				}
			}, "%s", s.text)
			return n, err
		}); err != nil {
			return err
		}
	}
	return nil
}

// ---- table ----

// meanCell is a table cell with the mean of vs, or "–" without any.
func meanCell(vs []float64) string {
	if len(vs) == 0 {
		return "–"
	}
	var sum float64
	for _, v := range vs {
		sum += v
	}
	return fmt.Sprintf("%.0f", sum/float64(len(vs)))
}

// bigboxLine is one parsed "bigbox ..." line.
type bigboxLine struct {
	label, cmd      string
	ms, cpuMS, disk float64 // disk: KiB read from the disk
	hasCPU, hasDisk bool
	items           float64
}

func parseBigboxLine(s string) (bigboxLine, bool) {
	f := strings.Fields(s)
	if len(f) < 2 || f[0] != "bigbox" {
		return bigboxLine{}, false
	}
	var l bigboxLine
	hasMS := false
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case "label":
			l.label = v
		case "cmd":
			l.cmd = v
		case "ms":
			x, err := strconv.ParseFloat(v, 64)
			l.ms, hasMS = x, err == nil
		case "cpu_ms":
			x, err := strconv.ParseFloat(v, 64)
			l.cpuMS, l.hasCPU = x, err == nil
		case "disk_kib":
			x, err := strconv.ParseFloat(v, 64)
			l.disk, l.hasDisk = x, err == nil
		case "items":
			l.items, _ = strconv.ParseFloat(v, 64)
		}
	}
	return l, hasMS && l.label != "" && l.cmd != ""
}

func bigboxTableMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ternbench bigbox table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	first := fs.String("first", "tern", "label whose speed ratio to the other label is reported")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	type key struct{ cmd, label string }
	msv := map[key][]float64{}
	cpu := map[key][]float64{}
	disk := map[key][]float64{}
	items := map[key][]float64{}
	var cmds []string
	labels := []string{*first}
	for _, name := range fs.Args() {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "ternbench bigbox table: %v\n", err)
			return 1
		}
		for _, s := range strings.Split(string(data), "\n") {
			l, ok := parseBigboxLine(s)
			if !ok {
				continue
			}
			if !slices.Contains(cmds, l.cmd) {
				cmds = append(cmds, l.cmd)
			}
			if !slices.Contains(labels, l.label) {
				labels = append(labels, l.label)
			}
			k := key{l.cmd, l.label}
			msv[k] = append(msv[k], l.ms)
			items[k] = append(items[k], l.items)
			if l.hasCPU {
				cpu[k] = append(cpu[k], l.cpuMS)
			}
			if l.hasDisk {
				disk[k] = append(disk[k], l.disk)
			}
		}
	}
	if len(labels) < 2 {
		fmt.Fprintln(stderr, "ternbench bigbox table: need lines of two labels")
		return 1
	}
	// Commands in the documented order, unknown ones after.
	slices.SortStableFunc(cmds, func(a, b string) int { return bigboxCmdIndex(a) - bigboxCmdIndex(b) })
	a, o := labels[0], labels[1]
	fmt.Fprintf(stdout, "| command | %s ms | %s ms | %s/%s speed (>1: %s faster) | %s CPU ms | %s CPU ms | %s disk KiB | %s disk KiB | runs |\n", a, o, a, o, a, a, o, a, o)
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|")
	for _, cmd := range cmds {
		ka, ko := key{cmd, a}, key{cmd, o}
		ma, mo := median(msv[ka]), median(msv[ko])
		ratio := "–"
		if ma > 0 && mo > 0 {
			ratio = fmt.Sprintf("**%.2f×**", mo/ma)
		}
		fmt.Fprintf(stdout, "| `%s` | %s | %s | %s | %s | %s | %s | %s | %d/%d |\n", bigboxCmdText(cmd), fmtMS(msv[ka]), fmtMS(msv[ko]), ratio,
			meanCell(cpu[ka]), meanCell(cpu[ko]), meanCell(disk[ka]), meanCell(disk[ko]), len(msv[ka]), len(msv[ko]))
	}
	fmt.Fprintf(stdout, "\nms: median per command; CPU ms: mean server CPU during the command (10 ms ticks); items (median) %s/%s:", a, o)
	for _, cmd := range cmds {
		fmt.Fprintf(stdout, " %s %.0f/%.0f", cmd, median(items[key{cmd, a}]), median(items[key{cmd, o}]))
	}
	fmt.Fprintln(stdout)
	return 0
}

// bigboxAllCmds is the everyday commands, then the searches.
var bigboxAllCmds = append(append(slices.Clone(bigboxCmds), bigboxSearches...), bigboxFuzzySearches...)

func bigboxCmdIndex(name string) int {
	for i, c := range bigboxAllCmds {
		if c.name == name {
			return i
		}
	}
	return len(bigboxAllCmds)
}

func bigboxCmdText(name string) string {
	if i := bigboxCmdIndex(name); i < len(bigboxAllCmds) {
		return bigboxAllCmds[i].text
	}
	return name
}

func fmtMS(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	m := median(v)
	switch {
	case m >= 100:
		return fmt.Sprintf("%.0f", m)
	case m >= 10:
		return fmt.Sprintf("%.1f", m)
	}
	return fmt.Sprintf("%.2f", m)
}
