package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// BenchmarkLMTPDelivery measures LMTP delivery throughput end to end: real
// TCP on loopback, go-smtp's LMTP server, the SQLite store with fsync on
// (synchronous=FULL, body files fsynced before commit). Each message has
// one recipient; recipients rotate over 8 users. Run with
//
//	go test -run '^$' -bench LMTPDelivery -benchtime 2000x ./internal/delivery/
//
// and read msgs/s. (A comparison with Dovecot's dovecot-lmtp on the same
// machine and messages is left to the benchmark scripts.)
func BenchmarkLMTPDelivery(b *testing.B) {
	for _, clients := range []int{1, 8} {
		for _, size := range []int{4 << 10, 100 << 10} {
			b.Run(fmt.Sprintf("clients=%d/size=%dKiB", clients, size>>10), func(b *testing.B) {
				benchLMTP(b, clients, size)
			})
		}
	}
}

// BenchmarkLMTPSieve compares delivery with no script and with a 50-rule
// active script (none of whose rules matches, so both store into INBOX):
//
//	go test -run '^$' -bench LMTPSieve -benchtime 2000x ./internal/delivery/
//
// The machine's fsync latency dominates one client; run the two variants
// alternately several times and compare the means.
func BenchmarkLMTPSieve(b *testing.B) {
	for _, clients := range []int{1, 8} {
		for _, rules := range []int{0, 50} {
			b.Run(fmt.Sprintf("clients=%d/rules=%d", clients, rules), func(b *testing.B) {
				benchLMTPOpts(b, clients, 4<<10, benchScripts(rules), nil)
			})
		}
	}
}

// BenchmarkLMTPSieveGlobal adds to the 50-rule user script an operator
// before script (a spam rule) and an after script (an archive rule),
// neither matching, so every delivery runs three scripts:
//
//	go test -run '^$' -bench LMTPSieveGlobal -benchtime 2000x ./internal/delivery/
func BenchmarkLMTPSieveGlobal(b *testing.B) {
	dir := b.TempDir()
	before, after := dir+"/before.sieve", dir+"/after.sieve"
	writeBenchFile(b, before, `require ["fileinto", "mailbox"]; if header :contains "X-Spam-Flag" "YES" { fileinto :create "Junk"; stop; }`)
	writeBenchFile(b, after, `require ["fileinto", "copy"]; if header :contains "Subject" "[archive-me]" { fileinto :copy "Archive"; }`)
	g, err := LoadGlobalScripts(GlobalConfig{Before: []string{before}, After: []string{after}})
	if err != nil {
		b.Fatal(err)
	}
	for _, clients := range []int{1, 8} {
		for _, global := range []bool{false, true} {
			b.Run(fmt.Sprintf("clients=%d/global=%v", clients, global), func(b *testing.B) {
				gs := g
				if !global {
					gs = nil
				}
				benchLMTPOpts(b, clients, 4<<10, benchScripts(50), gs)
			})
		}
	}
}

func writeBenchFile(b *testing.B, path, src string) {
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		b.Fatal(err)
	}
}

// benchScripts returns a script source giving every bench user a script
// of n rules (nil for n = 0): header, address, envelope, :matches,
// :regex and body-free tests a typical user filter has.
func benchScripts(n int) ScriptSource {
	if n == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(`require ["fileinto", "envelope", "imap4flags", "regex", "variables", "subaddress", "mailbox"];` + "\n")
	for i := range n {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "if header :contains \"List-Id\" \"list%d.example.com\" { fileinto :create \"Lists/list%d\"; stop; }\n", i, i)
		case 1:
			fmt.Fprintf(&b, "if address :is \"from\" [\"friend%d@example.net\", \"colleague%d@example.org\"] { addflag \"\\\\Flagged\"; fileinto \"People\"; }\n", i, i)
		case 2:
			fmt.Fprintf(&b, "if header :matches \"subject\" \"*[project-%d]*\" { fileinto \"Projects/${2}\"; }\n", i)
		case 3:
			fmt.Fprintf(&b, "if allof (envelope :detail \"to\" \"tag%d\", not exists \"X-Seen%d\") { fileinto \"Tags\"; }\n", i, i)
		case 4:
			fmt.Fprintf(&b, "if header :regex \"X-Spam-Score\" \"^%d[0-9]\\\\.\" { fileinto \"Junk\"; stop; }\n", i)
		}
	}
	src := b.String()
	if _, err := sieve.Compile([]byte(src), sieve.Options{}); err != nil {
		panic(fmt.Sprintf("bench script: %v", err)) // would measure the fallback, not filtering
	}
	active := map[string]string{}
	for i := range benchUsers {
		active[fmt.Sprintf("user%d", i)] = src
	}
	return &userScripts{active: active}
}

const benchUsers = 8

func benchLMTP(b *testing.B, clients, size int) { benchLMTPOpts(b, clients, size, nil, nil) }

func benchLMTPOpts(b *testing.B, clients, size int, scripts ScriptSource, global *GlobalScripts) {
	dir := b.TempDir()
	st, err := sqlite.Open(context.Background(), dir, sqlite.Options{Notifier: notify.New(), Logger: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for i := range benchUsers {
		if err := st.CreateUser(context.Background(), fmt.Sprintf("user%d", i), "x"); err != nil {
			b.Fatal(err)
		}
	}
	d := New(st, Options{Logger: quietLog(), Scripts: scripts, Global: global})
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewLMTPServer(d, LMTPConfig{})
	go srv.Serve(ln)
	defer srv.Close()

	msg := benchMessage(size)
	conns := make([]*benchClient, clients)
	for i := range conns {
		if conns[i], err = dialBench(ln.Addr().String()); err != nil {
			b.Fatal(err)
		}
		defer conns[i].close()
	}
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		n := b.N / clients
		if c < b.N%clients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				rcpt := fmt.Sprintf("user%d@example.org", (c+i*clients)%benchUsers)
				if err := conns[c].deliver(rcpt, msg); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// benchMessage returns a plain-text message of about size bytes.
func benchMessage(size int) []byte {
	var buf bytes.Buffer
	buf.WriteString("From: Bench <bench@example.net>\r\nTo: someone@example.org\r\nSubject: benchmark message\r\n" +
		"Date: Tue, 3 Feb 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.net>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:76] + "\r\n"
	for buf.Len()+len(line) <= size {
		buf.WriteString(line)
	}
	return buf.Bytes()
}

type benchClient struct {
	c *textproto.Conn
}

func dialBench(addr string) (*benchClient, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &benchClient{c: textproto.NewConn(nc)}
	if _, _, err := c.c.ReadResponse(220); err != nil {
		return nil, err
	}
	if err := c.cmd(250, "LHLO bench.example"); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *benchClient) cmd(code int, line string) error {
	if err := c.c.PrintfLine("%s", line); err != nil {
		return err
	}
	_, _, err := c.c.ReadResponse(code)
	return err
}

func (c *benchClient) deliver(rcpt string, msg []byte) error {
	if err := c.cmd(250, "MAIL FROM:<bench@example.net>"); err != nil {
		return err
	}
	if err := c.cmd(250, "RCPT TO:<"+rcpt+">"); err != nil {
		return err
	}
	if err := c.cmd(354, "DATA"); err != nil {
		return err
	}
	w := c.c.DotWriter()
	if _, err := io.Copy(w, bytes.NewReader(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	_, _, err := c.c.ReadResponse(250)
	return err
}

func (c *benchClient) close() {
	c.c.PrintfLine("QUIT")
	c.c.Close()
}

// BenchmarkSieveSequence measures the CPU cost of the scripts alone (no
// store, no network): the 50-rule user script, and the same between a
// before and an after script (BenchmarkLMTPSieveGlobal's, neither
// matching):
//
//	go test -run '^$' -bench SieveSequence ./internal/delivery/
func BenchmarkSieveSequence(b *testing.B) {
	dir := b.TempDir()
	before, after := dir+"/before.sieve", dir+"/after.sieve"
	writeBenchFile(b, before, `require ["fileinto", "mailbox"]; if header :contains "X-Spam-Flag" "YES" { fileinto :create "Junk"; stop; }`)
	writeBenchFile(b, after, `require ["fileinto", "copy"]; if header :contains "Subject" "[archive-me]" { fileinto :copy "Archive"; }`)
	g, err := LoadGlobalScripts(GlobalConfig{Before: []string{before}, After: []string{after}})
	if err != nil {
		b.Fatal(err)
	}
	src, _ := benchScripts(50).ActiveScript(context.Background(), "user0")
	in := Incoming{User: "user0", Address: "user0@example.org", From: "sender@example.net", Body: benchMessage(4 << 10)}
	for _, global := range []bool{false, true} {
		b.Run(fmt.Sprintf("global=%v", global), func(b *testing.B) {
			opts := Options{Logger: quietLog()}
			if global {
				opts.Global = g
			}
			d := New(nil, opts)
			stages := d.stages(d.Global(), src)
			env := sieve.Envelope{From: in.From, To: in.Address}
			for b.Loop() {
				if res := d.runSequence(context.Background(), in, env, stages, nil); !res.ImplicitKeep {
					b.Fatal("a rule matched")
				}
			}
		})
	}
}

// BenchmarkIMAPSieveLookup measures what STORE and FETCH's \Seen ask
// before every flag change (HasIMAPSieveScript) on a mailbox without a
// script, against the SQLite store: uncached (two metadata reads, as
// before the cache) and cached.
//
//	go test -run '^$' -bench IMAPSieveLookup ./internal/delivery/
func BenchmarkIMAPSieveLookup(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{Notifier: notify.New(), Logger: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateUser(ctx, "alice", "x"); err != nil {
		b.Fatal(err)
	}
	acct, err := st.Account(ctx, "alice")
	if err != nil {
		b.Fatal(err)
	}
	defer acct.Close()
	mi, err := acct.Mailbox(ctx, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	d := New(st, Options{Logger: quietLog()})
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			if s, _, err := d.imapSieveScript(ctx, acct, "INBOX"); s != nil || err != nil {
				b.Fatal(s, err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if d.HasIMAPSieveScript(ctx, acct, "INBOX", mi.ID) {
				b.Fatal("a script")
			}
		}
	})
}
