// Package e2e_test drives the real tern binary with real mail clients
// (Python imaplib, mbsync, offlineimap, curl, neomutt) the way a person
// would use them, and checks the outcome through an independent IMAP
// client. Every check looks at message bytes, flags or counts. Each test
// runs on the embedded store and on PostgreSQL (forEachStore).
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tern-imap/tern/internal/pgtest"
)

// ternBin is the binary built once by TestMain.
var ternBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "tern-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	ternBin = filepath.Join(tmp, "tern")
	cmd := exec.Command("go", "build", "-o", ternBin, "./cmd/tern")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/tern: %v\n%s", err, out)
		return 1
	}
	return pgtest.Main(m)
}

// moduleRoot is two directories above this file (internal/e2e).
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the test source file")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root %s: %w", root, err)
	}
	return root, nil
}

// server is one running "tern serve" process.
type server struct {
	data      string // data directory
	certFile  string // <data>/tls/cert.pem, the self-signed certificate
	imapAddr  string // 127.0.0.1:port, plain IMAP (STARTTLS)
	imapsAddr string
	imapPort  string
	imapsPort string
	log       *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// forEachStore runs fn as a subtest per store: the embedded one (store
// nil) and, where PostgreSQL is installed, a new database of a private
// cluster (store: the flags that name it; skipped, saying why, without
// PostgreSQL).
func forEachStore(t *testing.T, fn func(t *testing.T, store []string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, nil) })
	t.Run("postgres", func(t *testing.T) { fn(t, []string{"--store", pgtest.NewDatabase(t)}) })
}

// addUser runs "tern user add NAME" with the password on stdin.
func addUser(t *testing.T, data string, store []string, name, password string) {
	t.Helper()
	cmd := exec.Command(ternBin, append([]string{"user", "add", "--data", data, name}, store...)...)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tern user add %s: %v\n%s", name, err, out)
	}
}

var listeningRE = regexp.MustCompile(`msg=listening proto=(imaps?) addr=(\S+)`)

// startServer creates a data directory, adds the given users (name ->
// password) and starts "tern serve" on loopback ports chosen by the
// kernel (read back from the "listening" log lines), on the store that
// the flags store name (nil: the embedded one in the data directory).
// The process is stopped with SIGTERM at cleanup and must exit 0.
func startServer(t *testing.T, users map[string]string, store ...string) *server {
	t.Helper()
	data := t.TempDir()
	for name, pw := range users {
		addUser(t, data, store, name, pw)
	}
	s := &server{data: data, certFile: filepath.Join(data, "tls", "cert.pem"), log: &syncBuffer{}}
	cmd := exec.Command(ternBin, append([]string{"serve", "--data", data,
		"--listen-imap", "127.0.0.1:0", "--listen-imaps", "127.0.0.1:0", "--listen-lmtp", "", "--listen-admin", ""}, store...)...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tern serve: %v", err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	addrs := make(chan [2]string, 2)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			s.log.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addrs <- [2]string{m[1], m[2]}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		if err := syscall.Kill(cmd.Process.Pid, syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM tern serve: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("tern serve exited with %v; log:\n%s", err, s.log.String())
			} else if l := s.log.String(); unexpectedErrors(l) {
				t.Errorf("tern serve logged errors:\n%s", l)
			} else if t.Failed() {
				t.Logf("tern serve log:\n%s", l)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("tern serve did not exit within 15s of SIGTERM; log:\n%s", s.log.String())
		}
	})
	deadline := time.After(15 * time.Second)
	for s.imapAddr == "" || s.imapsAddr == "" {
		select {
		case a := <-addrs:
			if a[0] == "imap" {
				s.imapAddr = a[1]
			} else {
				s.imapsAddr = a[1]
			}
		case err := <-exited:
			stopped = true
			t.Fatalf("tern serve exited early (%v); log:\n%s", err, s.log.String())
		case <-deadline:
			t.Fatalf("tern serve did not report listening; log:\n%s", s.log.String())
		}
	}
	s.imapPort = s.imapAddr[strings.LastIndexByte(s.imapAddr, ':')+1:]
	s.imapsPort = s.imapsAddr[strings.LastIndexByte(s.imapsAddr, ':')+1:]
	return s
}

// unexpectedErrors reports whether the server log has a panic or an
// ERROR line.
func unexpectedErrors(log string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "panic") || strings.Contains(line, "level=ERROR") {
			return true
		}
	}
	return false
}

// roots is a pool holding the server's self-signed certificate.
func (s *server) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pemData, err := os.ReadFile(s.certFile)
	if err != nil {
		t.Fatalf("read certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatalf("no certificate in %s", s.certFile)
	}
	return pool
}

// client is an independent IMAP client (go-imap v2) used to seed and to
// check what the real clients did.
func (s *server) client(t *testing.T, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.imapsAddr, &imapclient.Options{
		TLSConfig:   &tls.Config{RootCAs: s.roots(t), ServerName: "localhost"},
		DebugWriter: debugWriter(),
	})
	if err != nil {
		t.Fatalf("dial %s: %v", s.imapsAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// debugWriter shows the go-imap client's wire exchange when
// TERN_E2E_DEBUG is set (to a file name: appended there; else stderr).
func debugWriter() io.Writer {
	switch v := os.Getenv("TERN_E2E_DEBUG"); v {
	case "":
		return nil
	case "1":
		return os.Stderr
	default:
		f, err := os.OpenFile(v, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return os.Stderr
		}
		return f
	}
}

// appendMsg appends body to mailbox with flags and returns its UID.
func appendMsg(t *testing.T, c *imapclient.Client, mailbox string, body []byte, flags ...imap.Flag) imap.UID {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(body)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(body); err != nil {
		t.Fatalf("append write: %v", err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("append close: %v", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("append to %s: %v", mailbox, err)
	}
	return data.UID
}

// msg is one message as the independent client sees it.
type msg struct {
	UID   imap.UID
	Flags []string // sorted, without \Recent
	Body  []byte
}

func (m msg) has(flag string) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

func (m msg) String() string {
	return fmt.Sprintf("{UID %d %v %q}", m.UID, m.Flags, m.Body)
}

// mailboxContents selects mailbox read-only and fetches every message's
// UID, flags and full bytes, in UID order. When another client expunges
// between EXAMINE and FETCH the snapshot is retaken.
func mailboxContents(t *testing.T, c *imapclient.Client, mailbox string) []msg {
	t.Helper()
	for try := 0; ; try++ {
		msgs, exists, err := mailboxSnapshot(c, mailbox)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == exists {
			return msgs
		}
		if try == 20 {
			t.Fatalf("%s: EXISTS %d but fetched %d messages, 20 times", mailbox, exists, len(msgs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mailboxSnapshot is one EXAMINE and FETCH 1:* of mailbox. It returns
// the messages and the EXISTS count (they differ when another session
// expunged in between).
func mailboxSnapshot(c *imapclient.Client, mailbox string) ([]msg, int, error) {
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, 0, fmt.Errorf("examine %s: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil, 0, nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		return nil, 0, fmt.Errorf("fetch %s: %w", mailbox, err)
	}
	out := make([]msg, 0, len(bufs))
	for _, b := range bufs {
		m := msg{UID: b.UID, Body: b.FindBodySection(section)}
		for _, f := range b.Flags {
			if f != "\\Recent" {
				m.Flags = append(m.Flags, string(f))
			}
		}
		sort.Strings(m.Flags)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, int(sel.NumMessages), nil
}

// findBody returns the message whose bytes equal body.
func findBody(msgs []msg, body []byte) (msg, bool) {
	for _, m := range msgs {
		if bytes.Equal(m.Body, body) {
			return m, true
		}
	}
	return msg{}, false
}

// testMessage is a small RFC 5322 message with CRLF line ends; n makes
// it unique.
func testMessage(from, subject string, n int) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: alice@example.org\r\nSubject: %s\r\n"+
		"Date: Tue, 03 Mar 2026 10:%02d:00 +0100\r\nMessage-ID: <e2e-%d-%s@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Hello number %d.\r\nSecond line of the body.\r\n", from, subject, n%60, n, strings.ReplaceAll(subject, " ", "-"), n))
}

// bigMessage is a multipart message of roughly size bytes with a
// base64 attachment, 8-bit UTF-8 text and a long header line.
func bigMessage(subject string, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Big <big@example.org>\r\nTo: alice@example.org\r\nSubject: %s\r\n"+
		"Date: Wed, 04 Mar 2026 08:00:00 +0000\r\nMessage-ID: <big-%s@example.org>\r\n"+
		"X-Long: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+
		"Grüße aus Köln — 日本語テキスト.\r\n--b1\r\nContent-Type: application/octet-stream; name=\"blob.bin\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n",
		subject, strings.ReplaceAll(subject, " ", "-"), strings.Repeat("x", 900))
	line := 0
	for b.Len() < size {
		fmt.Fprintf(&b, "%076d\r\n", line*7919)
		line++
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

// run executes a client program with a timeout, returning its combined
// output; it fails the test when the program fails.
func run(t *testing.T, env []string, dir string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(env, dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(env []string, dir string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out: %w", name, ctx.Err())
	}
	return out.String(), err
}

// need skips the test when a client program is not installed.
func need(t *testing.T, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install the client to run this test)", program)
	}
	return p
}
