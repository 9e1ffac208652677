package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Connecting to the relay. tern greets the relay itself (greeting, EHLO,
// STARTTLS when offered) and hands the connection — TLS from there on —
// to the go-smtp client, which then says EHLO again (RFC 3207 §4.2: the
// client must forget what it learnt before TLS). go-smtp's own STARTTLS
// would first say EHLO as "localhost"; doing it here also refuses a relay
// that sends anything after its 220 to STARTTLS before the handshake
// (command injection into the TLS session, CVE-2011-0411's client side).

// TLSOptions configures TLS to the relay.
type TLSOptions struct {
	// Require refuses to send over a connection where the relay does
	// not offer STARTTLS (a temporary failure, retried).
	Require bool
	// CAFile, if set, is a PEM file of the certificates the relay's
	// certificate must chain to, instead of the system's roots.
	CAFile string
	// Insecure skips verification of the relay's certificate (tests,
	// a relay on loopback with a self-signed certificate).
	Insecure bool
}

// Auth is SMTP AUTH PLAIN to the relay. It is sent only over TLS, or
// over plain TCP to a relay on a loopback address.
type Auth struct {
	Username, Password string
}

// errCredentialsInClear: the relay offered no TLS and is not on loopback.
var errCredentialsInClear = errors.New("the relay offers no STARTTLS and is not on loopback: credentials not sent")

// tlsConfig builds the client TLS configuration for the relay.
func tlsConfig(relay string, o TLSOptions) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(relay)
	if err != nil {
		return nil, fmt.Errorf("relay %q: %w", relay, err)
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("relay CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("relay CA file %s: no PEM certificates", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// dial connects to the relay, upgrades to TLS when offered (or as
// required) and authenticates when configured. It returns a client ready
// for MAIL FROM and whether the connection is encrypted.
func (q *Queue) dial(ctx context.Context) (*smtp.Client, bool, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", q.opts.Relay)
	if err != nil {
		return nil, false, fmt.Errorf("connect: %w", err)
	}
	conn, secure, err := q.negotiateTLS(ctx, nc)
	if err != nil {
		nc.Close()
		return nil, false, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = q.opts.Timeout
	c.SubmissionTimeout = q.opts.Timeout
	if err := c.Hello(q.opts.Hostname); err != nil {
		c.Close()
		return nil, false, fmt.Errorf("hello: %w", err)
	}
	if q.opts.Auth.Username != "" {
		if err := q.authenticate(c, secure); err != nil {
			c.Close()
			return nil, false, err
		}
	}
	return c, secure, nil
}

// negotiateTLS reads the greeting, says EHLO and, if the relay offers
// STARTTLS, performs it. The returned connection replays a greeting for
// the go-smtp client.
func (q *Queue) negotiateTLS(ctx context.Context, nc net.Conn) (net.Conn, bool, error) {
	nc.SetDeadline(time.Now().Add(q.opts.Timeout))
	defer nc.SetDeadline(time.Time{})
	br := bufio.NewReader(nc)
	tp := textproto.NewConn(struct {
		io.Reader
		io.WriteCloser
	}{br, nc})
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, false, fmt.Errorf("greeting: %w", err)
	}
	offered := false
	if err := tp.PrintfLine("EHLO %s", q.opts.Hostname); err != nil {
		return nil, false, fmt.Errorf("EHLO: %w", err)
	}
	if _, msg, err := tp.ReadResponse(250); err == nil {
		offered = hasExtension(msg, "STARTTLS")
	} else if _, isProto := err.(*textproto.Error); !isProto {
		return nil, false, fmt.Errorf("EHLO: %w", err)
	}
	if !offered {
		if q.opts.TLS.Require {
			return nil, false, errors.New("the relay does not offer STARTTLS (sieve.smtp_require_tls)")
		}
		return replayGreeting(nc, br), false, nil
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, false, fmt.Errorf("STARTTLS: %w", err)
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, false, fmt.Errorf("STARTTLS: %w", err)
	}
	if br.Buffered() > 0 {
		return nil, false, errors.New("STARTTLS: the relay sent data before the TLS handshake")
	}
	tc := tls.Client(nc, q.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, false, fmt.Errorf("TLS handshake with the relay: %w", err)
	}
	return replayGreeting(tc, nil), true, nil
}

// hasExtension reports whether an EHLO reply (lines joined by "\n", the
// first being the greeting) lists ext.
func hasExtension(ehlo, ext string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], ext) {
			return true
		}
	}
	return false
}

// greetedConn hands the go-smtp client a greeting line, then the
// connection's bytes (those already buffered first).
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }

func replayGreeting(c net.Conn, buffered *bufio.Reader) net.Conn {
	var rest io.Reader = c
	if buffered != nil {
		rest = buffered
	}
	return &greetedConn{Conn: c, r: io.MultiReader(strings.NewReader("220 relay\r\n"), rest)}
}

// authenticate sends AUTH PLAIN. A refusal is a temporary failure: the
// operator fixes the credentials and the queued mail still goes out.
func (q *Queue) authenticate(c *smtp.Client, secure bool) error {
	if !secure && !onLoopback(q.opts.Relay) {
		return errCredentialsInClear
	}
	if ok := c.SupportsAuth(sasl.Plain); !ok {
		return errors.New("AUTH: the relay does not offer AUTH PLAIN")
	}
	a := q.opts.Auth
	if err := c.Auth(sasl.NewPlainClient("", a.Username, a.Password)); err != nil {
		return fmt.Errorf("AUTH as %s: %v", a.Username, err) // %v: never permanent
	}
	return nil
}

// onLoopback reports whether host:port names a loopback address.
func onLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
