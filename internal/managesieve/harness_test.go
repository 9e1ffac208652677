package managesieve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
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
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
	"github.com/tern-imap/tern/internal/tlsutil"
)

// testCheck is a real validator for the tests: it rejects scripts with
// the word "bogus" (with a multi-line error, as compilers give) and
// accepts scripts with "warnme" with a warning.
func testCheck(src []byte) error {
	if i := bytes.Index(src, []byte("bogus")); i >= 0 {
		line := 1 + bytes.Count(src[:i], []byte("\n"))
		return fmt.Errorf("line %d: unknown command \"bogus\"\nerror: script has 1 error", line)
	}
	if bytes.Contains(src, []byte("warnme")) {
		return testWarning("line 1: warning: this is only a warning")
	}
	return nil
}

type testWarning string

func (w testWarning) Error() string { return string(w) }
func (w testWarning) Warning() bool { return true }

type testServer struct {
	t     *testing.T
	addr  string
	store store.Store
	roots *x509.CertPool
	srv   *Server
	// certPEM is the server's self-signed certificate.
	certPEM []byte
}

type testOpts struct {
	insecureAuth bool
	policy       auth.Policy
	mutate       func(*Config)
	// wrapListener, if set, wraps the server's listener.
	wrapListener func(net.Listener) net.Listener
}

const testPassword = "secret pass"

func newTestServer(t *testing.T, o testOpts) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	hash, err := auth.HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, hash); err != nil {
			t.Fatal(err)
		}
	}
	certPEM, keyPEM, err := tlsutil.Generate([]string{"localhost", "127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatalf("generate cert: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	authn, err := auth.New(st, auth.Options{Policy: o.policy})
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if os.Getenv("TERN_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	cfg := Config{
		TLS:          func() *tls.Config { return tlsCfg },
		InsecureAuth: o.insecureAuth,
		Auth:         authn,
		Check:        testCheck,
		Extensions:   func() []string { return []string{"fileinto", "vacation", "variables"} },
		MaxRedirects: 4,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	srv := New(cfg, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.wrapListener != nil {
		ln = o.wrapListener(ln)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		st.Close()
	})
	return &testServer{t: t, addr: ln.Addr().String(), store: st, roots: roots, srv: srv, certPEM: certPEM}
}

// account opens user's account directly (to prepare or inspect state).
func (ts *testServer) account(user string) store.Account {
	ts.t.Helper()
	a, err := ts.store.Account(context.Background(), user)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { a.Close() })
	return a
}

// client speaks ManageSieve over a real TCP connection.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dial connects and returns the client with the greeting read.
func (ts *testServer) dial() (*client, string) {
	ts.t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { nc.Close() })
	c := &client{t: ts.t, nc: nc, br: bufio.NewReader(nc)}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return c, c.response()
}

// response reads lines up to and including an OK, NO or BYE line, and
// returns them (literal contents included) with CRLF line ends.
func (c *client) response() string {
	c.t.Helper()
	var out strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read response: %v (so far %q)", err, out.String()+line)
		}
		out.WriteString(line)
		final := false
		for _, s := range []string{"OK", "NO", "BYE"} {
			final = final || line == s+"\r\n" || strings.HasPrefix(line, s+" ")
		}
		if n, ok := literalSize(line); ok {
			buf := make([]byte, n)
			if _, err := io.ReadFull(c.br, buf); err != nil {
				c.t.Fatalf("read literal: %v", err)
			}
			out.Write(buf)
			if !final {
				continue
			}
			rest, err := c.br.ReadString('\n')
			if err != nil {
				c.t.Fatalf("read after literal: %v", err)
			}
			out.WriteString(rest)
		}
		if final {
			return out.String()
		}
	}
}

// literalSize reports the size of a literal announced at the end of line.
func literalSize(line string) (int, bool) {
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(line[i+1 : len(line)-1])
	return n, err == nil
}

// send writes raw bytes (CRLF included by the caller).
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// do sends one command line (CRLF added) and returns the response.
func (c *client) do(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.response()
}

// want checks that a response ends with the status line want (exact).
func want(t *testing.T, what, resp, last string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(resp, "\r\n"), "\r\n")
	if lines[len(lines)-1] != last {
		t.Fatalf("%s: last line %q, want %q (response %q)", what, lines[len(lines)-1], last, resp)
	}
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

// startTLS runs STARTTLS and returns the capabilities sent after it.
func (c *client) startTLS(roots *x509.CertPool) string {
	c.t.Helper()
	want(c.t, "STARTTLS", c.do("STARTTLS"), `OK "Begin TLS negotiation now"`)
	tc := tls.Client(c.nc, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.nc = tc
	c.br = bufio.NewReader(tc)
	return c.response()
}

// login dials, runs STARTTLS and authenticates as user.
func (ts *testServer) login(user string) *client {
	ts.t.Helper()
	c, _ := ts.dial()
	c.startTLS(ts.roots)
	want(ts.t, "AUTHENTICATE", c.do(`AUTHENTICATE "PLAIN" "`+plain(user, testPassword)+`"`), `OK "Logged in"`)
	return c
}
