// Package smtptest is for tests only: an SMTP server on a loopback port
// (go-smtp) that accepts and records every message, the relay that
// tern's outbound queue sends to in tests.
package smtptest

import (
	"io"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// Message is one message the sink accepted.
type Message struct {
	From string   // MAIL FROM, "" for <>
	To   []string // RCPT TO
	Data string
}

// Sink is a running SMTP server that records messages.
type Sink struct {
	Addr string // host:port

	mu  sync.Mutex
	got []Message
}

// Start starts a sink on a free loopback port, stopped when t ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	k := &Sink{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{k: k}, nil
	}))
	s.Domain = "sink.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.Addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return k
}

// Messages returns what the sink accepted so far, in order.
func (k *Sink) Messages() []Message {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.got)
}

type session struct {
	k    *Sink
	from string
	to   []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.k.mu.Lock()
	s.k.got = append(s.k.got, Message{s.from, slices.Clone(s.to), string(b)})
	s.k.mu.Unlock()
	return nil
}
