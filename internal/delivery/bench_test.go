package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/notify"
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

const benchUsers = 8

func benchLMTP(b *testing.B, clients, size int) {
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
	d := New(st, Options{Logger: quietLog()})
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
