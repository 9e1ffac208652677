// Package smtptest is for tests only: an SMTP server on a loopback port
// (go-smtp) that accepts and records every message, the relay that
// tern's outbound queue sends to in tests. It can offer STARTTLS (with a
// certificate generated when the test starts) and require AUTH PLAIN.
package smtptest

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tern-imap/tern/internal/tlsutil"
)

// Message is one message the sink accepted.
type Message struct {
	From string   // MAIL FROM, "" for <>
	To   []string // RCPT TO
	Data string
	TLS  bool   // the session had done STARTTLS
	User string // the AUTH user, "" without AUTH
}

// Options configure StartWith.
type Options struct {
	// TLS offers STARTTLS with a self-signed certificate for 127.0.0.1
	// and localhost generated now; Sink.CAFile is its PEM file.
	TLS bool
	// Username and Password, when set, offer AUTH PLAIN (also without
	// TLS) and refuse MAIL FROM before a successful AUTH.
	Username, Password string
}

// Sink is a running SMTP server that records messages.
type Sink struct {
	Addr   string // host:port
	CAFile string // with Options.TLS: the certificate to trust

	opts Options

	mu       sync.Mutex
	got      []Message
	authFail int
}

// Start starts a plain sink on a free loopback port, stopped when t ends.
func Start(t testing.TB) *Sink { return StartWith(t, Options{}) }

// StartWith starts a sink with opts on a free loopback port.
func StartWith(t testing.TB, opts Options) *Sink {
	t.Helper()
	k := &Sink{opts: opts}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{k: k, c: c}, nil
	}))
	s.Domain = "sink.test"
	s.AllowInsecureAuth = true
	if opts.TLS {
		certPEM, keyPEM, err := tlsutil.Generate([]string{"localhost", "127.0.0.1"}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		k.CAFile = filepath.Join(t.TempDir(), "sink-ca.pem")
		if err := os.WriteFile(k.CAFile, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
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

// AuthFailures returns how many AUTH attempts failed.
func (k *Sink) AuthFailures() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.authFail
}

type session struct {
	k    *Sink
	c    *smtp.Conn
	user string
	from string
	to   []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) AuthMechanisms() []string {
	if s.k.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.k.opts.Username || password != s.k.opts.Password {
			s.k.mu.Lock()
			s.k.authFail++
			s.k.mu.Unlock()
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.k.opts.Username != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
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
	_, isTLS := s.c.TLSConnectionState()
	s.k.mu.Lock()
	s.k.got = append(s.k.got, Message{From: s.from, To: slices.Clone(s.to), Data: string(b), TLS: isTLS, User: s.user})
	s.k.mu.Unlock()
	return nil
}
