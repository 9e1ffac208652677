package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/metrics"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// benchMessage is a small multipart message with an attachment, so that
// ENVELOPE and BODYSTRUCTURE have realistic content.
func benchMessage(i int) []byte {
	return fmt.Appendf(nil, "Date: Mon, 2 Feb 2026 10:%02d:00 +0100\r\n"+
		"From: =?UTF-8?B?Sm9zw6kgR2FyY8OtYQ==?= <jose.garcia@example.org>\r\n"+
		"To: Bob Smith <bob@example.com>, carol@example.net\r\nCc: Dave <dave@example.com>\r\n"+
		"Subject: Re: quarterly report %d\r\nMessage-ID: <%d.bench@example.org>\r\n"+
		"In-Reply-To: <%d.bench@example.org>\r\nReferences: <%d.bench@example.org>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello Bob,\r\nthe report is attached.\r\n"+
		"--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n--b1--\r\n",
		i%60, i, i, i-1, i-1)
}

// benchServer is a tern server over SQLite, behind the mailbox index as
// tern serve runs it, on loopback with one user whose INBOX holds n
// messages.
func benchServer(b *testing.B, n int) string { return benchServerWith(b, n, true) }

// benchServerWith is benchServer with the index optional (indexed false:
// every read goes to SQLite, as before the index existed).
func benchServerWith(b *testing.B, n int, indexed bool) string {
	return benchServerMsgs(b, n, indexed, benchMessage, false)
}

// benchServerMsgs is benchServerWith with message i+1 from msg, and the
// full-text index built before the server starts when indexText.
func benchServerMsgs(b *testing.B, n int, indexed bool, msg func(int) []byte, indexText bool) string {
	b.Helper()
	ctx := context.Background()
	hub := notify.New()
	var notifier store.Notifier = hub
	var ix *index.Indexes
	if indexed {
		ix = index.New(hub, index.Options{})
		notifier = ix
	}
	backend, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{Notifier: notifier, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	var st store.Store = backend
	if indexed {
		st = ix.Wrap(backend)
	}
	h, err := auth.HashPassword("pw")
	if err != nil {
		b.Fatal(err)
	}
	if err := st.CreateUser(ctx, "bench", h); err != nil {
		b.Fatal(err)
	}
	acct, err := st.Account(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		var msgs []store.NewMessage
		for j := i; j < min(n, i+500); j++ {
			flags := []string{`\Seen`}
			if j%10 == 0 {
				flags = nil // every tenth message unseen
			}
			msgs = append(msgs, store.NewMessage{Body: msg(j + 1), Flags: flags})
		}
		if _, err := acct.Append(ctx, "INBOX", msgs); err != nil {
			b.Fatal(err)
		}
	}
	acct.Close()
	if indexText {
		if err := backend.IndexText(ctx, "bench", false, nil); err != nil {
			b.Fatal(err)
		}
	}
	// Metrics on, as tern serve runs with its admin listener.
	m := metrics.New()
	if indexed {
		m.RegisterIndex(ix.Stats)
	}
	st = m.WrapStore(st)
	authn, err := auth.New(st, auth.Options{})
	if err != nil {
		b.Fatal(err)
	}
	// A benchmark is one client address opening many connections of one
	// user (BenchmarkIdleConnMemory: 90 per iteration): the per-address
	// and per-user limits would refuse them.
	srv := server.New(server.Config{InsecureAuth: true, Auth: authn, Notify: hub, Metrics: m,
		ConnRatePerIP: 1e6, ConnBurstPerIP: 1 << 20, MaxUserIPConns: 1 << 20, MaxUserConns: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln, false)
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		st.Close()
	})
	return ln.Addr().String()
}

// benchConn is a minimal raw client: it sends a command and reads
// responses (with literals) until the tagged one, counting untagged ones.
type benchConn struct {
	b   *testing.B
	nc  net.Conn
	r   *bufio.Reader
	tag int
}

func dialBench(b *testing.B, addr string) *benchConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	// Large enough for one SORT or SEARCH line of 100,000 UIDs.
	c := &benchConn{b: b, nc: nc, r: bufio.NewReaderSize(nc, 4<<20)}
	if _, err := c.r.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	c.do("LOGIN bench pw")
	c.do("SELECT INBOX")
	return c
}

// do runs one command and returns the number of untagged responses.
func (c *benchConn) do(cmd string) int {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	if _, err := io.WriteString(c.nc, tag+" "+cmd+"\r\n"); err != nil {
		c.b.Fatal(err)
	}
	n := 0
	tagB := []byte(tag + " ")
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			c.b.Fatalf("%s: %v", cmd, err)
		}
		untagged := line[0] == '*'
		if !untagged && bytes.HasPrefix(line, tagB) {
			if !bytes.HasPrefix(line[len(tagB):], []byte("OK")) {
				c.b.Fatalf("%s: %s", cmd, line)
			}
			return n
		}
		if untagged {
			n++
		}
		// Skip literals (and the lines continuing the response) without
		// allocating, so the allocations reported are the server's.
		for {
			l := bytes.TrimRight(line, "\r\n")
			i := bytes.LastIndexByte(l, '{')
			if !bytes.HasSuffix(l, []byte("}")) || i < 0 {
				break
			}
			size := 0
			for _, d := range bytes.TrimSuffix(l[i+1:len(l)-1], []byte("+")) {
				size = size*10 + int(d-'0')
			}
			if _, err := c.r.Discard(size); err != nil {
				c.b.Fatal(err)
			}
			if line, err = c.r.ReadSlice('\n'); err != nil {
				c.b.Fatal(err)
			}
		}
	}
}

// BenchmarkFetch measures the FETCH path through the whole server (parser,
// store, encoding, socket) on a 10,000-message mailbox over loopback.
func BenchmarkFetch(b *testing.B) {
	const n = 10000
	addr := benchServer(b, n)
	for _, tc := range []struct{ name, cmd string }{
		{"Flags10k", "FETCH 1:* (FLAGS)"},
		{"Envelope10k", "UID FETCH 1:* (UID FLAGS ENVELOPE)"},
		{"SyncHeaders10k", "UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := dialBench(b, addr)
			b.ReportAllocs()
			for b.Loop() {
				if got := c.do(tc.cmd); got != n {
					b.Fatalf("%d FETCH responses, want %d", got, n)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	// The same FETCH under COMPRESS=DEFLATE (the client decompresses, so
	// its CPU is in the numbers too); wire-B/op is what crossed the socket.
	b.Run("SyncHeaders10kCompressed", func(b *testing.B) {
		c := dialBench(b, addr)
		c.do("COMPRESS DEFLATE")
		pending, _ := c.r.Peek(c.r.Buffered())
		fc := newFlateConn(c.nc, bytes.NewReader(bytes.Clone(pending)))
		c.nc, c.r = fc, bufio.NewReaderSize(fc, 64<<10)
		b.ReportAllocs()
		in0 := fc.in.Load()
		for b.Loop() {
			if got := c.do("UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)"); got != n {
				b.Fatalf("%d FETCH responses, want %d", got, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(fc.in.Load()-in0)/float64(b.N), "wire-B/op")
	})
	b.Run("BodyPeek", func(b *testing.B) {
		c := dialBench(b, addr)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i = (i*7919 + 1) % n
			if got := c.do(fmt.Sprintf("UID FETCH %d BODY.PEEK[]", i+1)); got != 1 {
				b.Fatalf("%d FETCH responses, want 1", got)
			}
		}
	})
}

// BenchmarkSession measures the commands a client sends all day on a
// 10,000-message mailbox (TERN_BENCH_MESSAGES=N for another size), with
// the mailbox index (as tern serve runs) and without it (every read from
// SQLite), in the same run.
func BenchmarkSession(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("TERN_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	for _, indexed := range []bool{false, true} {
		name := "store"
		if indexed {
			name = "index"
		}
		b.Run(name, func(b *testing.B) {
			addr := benchServerWith(b, n, indexed)
			benchSessionCommands(b, addr, n)
		})
	}
}

func benchSessionCommands(b *testing.B, addr string, n int) {
	for _, tc := range []struct{ name, cmd string }{
		{"Noop", "NOOP"}, // the per-command cost of the session loop itself
		{"Status", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT HIGHESTMODSEQ)"},
		{"Select", "SELECT INBOX"},
		{"FetchFlags", "UID FETCH 1:* (FLAGS)"},
		{"SearchUnseen", "UID SEARCH UNSEEN"},
		{"SortDate", "UID SORT (REVERSE DATE) UTF-8 ALL"},
		{"Thread", "UID THREAD REFERENCES UTF-8 ALL"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := dialBench(b, addr)
			c.do(tc.cmd) // warm
			for b.Loop() {
				c.do(tc.cmd)
			}
		})
	}
	b.Run("Store1000", func(b *testing.B) {
		c := dialBench(b, addr)
		for b.Loop() {
			c.do("UID STORE 2001:3000 +FLAGS.SILENT (\\Flagged)")
			c.do("UID STORE 2001:3000 -FLAGS.SILENT (\\Flagged)")
		}
	})
	b.Run("ChangedSince10", func(b *testing.B) {
		c := dialBench(b, addr)
		other := dialBench(b, addr)
		c.do("ENABLE CONDSTORE")
		for b.Loop() {
			b.StopTimer()
			ms := statusModSeq(b, c)
			for i := range 10 {
				other.do(fmt.Sprintf("UID STORE %d +FLAGS.SILENT (\\Answered)", 100+i*37))
				other.do(fmt.Sprintf("UID STORE %d -FLAGS.SILENT (\\Answered)", 100+i*37))
			}
			b.StartTimer()
			c.do(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", ms))
		}
	})
}

// statusModSeq asks the server for INBOX's HIGHESTMODSEQ through STATUS.
func statusModSeq(b *testing.B, c *benchConn) uint64 {
	c.tag++
	tag := "h" + strconv.Itoa(c.tag)
	if _, err := io.WriteString(c.nc, tag+" STATUS INBOX (HIGHESTMODSEQ)\r\n"); err != nil {
		b.Fatal(err)
	}
	var ms uint64
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if i := strings.Index(line, "HIGHESTMODSEQ "); i >= 0 && line[0] == '*' {
			ms, _ = strconv.ParseUint(strings.TrimRight(line[i+14:], ")\r\n"), 10, 64)
		}
		if strings.HasPrefix(line, tag+" ") {
			return ms
		}
	}
}
