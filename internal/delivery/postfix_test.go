package delivery

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/server"
)

// TestPostfixDeliversOverLMTP runs a private Postfix instance (its own
// configuration, queue and log in a temporary directory; listening on
// loopback only; no SMTP client service and every non-LMTP transport set
// to "error", so it cannot send anywhere) that relays mail for
// example.org to tern over LMTP. Mail is submitted with swaks (or
// Python's smtplib) and read back over IMAP byte for byte.
//
// It runs only with TERN_POSTFIX_TEST=1 (it needs root and Debian's
// postfix package; .ci/run installs both).
func TestPostfixDeliversOverLMTP(t *testing.T) {
	if os.Getenv("TERN_POSTFIX_TEST") != "1" {
		t.Skip("set TERN_POSTFIX_TEST=1 to run the Postfix integration test")
	}
	postfix, err := exec.LookPath("postfix")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/postfix"); err2 != nil {
			t.Skip("postfix is not installed")
		}
		postfix = "/usr/sbin/postfix"
	}
	if os.Geteuid() != 0 {
		t.Skip("the Postfix test needs root")
	}

	// tern: store, LMTP and IMAP on loopback.
	e := newEnv(t, Options{RecipientDelimiter: "+", Domains: []string{"example.org"}}, "alice", "bob")
	e.startLMTP(LMTPConfig{})
	if err := e.account("bob").SetQuota(context.Background(), 100, 0); err != nil {
		t.Fatal(err)
	}
	authn, err := auth.New(e.st, auth.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	imapSrv := server.New(server.Config{InsecureAuth: true, Auth: authn, Notify: e.hub, Logger: quietLog()}, e.st)
	imapLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go imapSrv.Serve(imapLn, false)
	t.Cleanup(func() { imapSrv.Shutdown(context.Background()) })

	// Postfix.
	base, err := os.MkdirTemp("", "tern-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	confDir := filepath.Join(base, "etc")
	queueDir := filepath.Join(base, "spool")
	dataDir := filepath.Join(base, "data")
	logFile := filepath.Join(base, "maillog")
	for _, d := range []string{confDir, queueDir} { // postfix creates dataDir, owned by postfix
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	smtpPort := freePort(t)
	_, lmtpPort, _ := net.SplitHostPort(e.addr)
	mainCf := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %s
data_directory = %s
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.tern-test.invalid
mydomain = tern-test.invalid
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
default_transport = error:outbound mail disabled in tern's test instance
relay_transport = error:outbound mail disabled in tern's test instance
local_transport = error:local delivery disabled in tern's test instance
virtual_mailbox_domains = example.org
virtual_transport = lmtp:inet:127.0.0.1:%s
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = no
biff = no
maillog_file = %s
maillog_file_prefixes = %s
alias_maps =
alias_database =
notify_classes =
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
`, queueDir, dataDir, lmtpPort, logFile, base)
	// Only the services this test needs: no SMTP client ("smtp unix"), so
	// nothing can leave the machine.
	masterCf := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`, smtpPort)
	writeFile(t, filepath.Join(confDir, "main.cf"), mainCf, time.Time{})
	writeFile(t, filepath.Join(confDir, "master.cf"), masterCf, time.Time{})
	runPostfix := func(args ...string) {
		t.Helper()
		// Postfix reports errors on standard error only when it is a
		// terminal; "script" provides one when available.
		cmd := exec.Command(postfix, append([]string{"-c", confDir}, args...)...)
		if script, err := exec.LookPath("script"); err == nil {
			cmd = exec.Command(script, "-qec", postfix+" -c "+confDir+" "+strings.Join(args, " "), "/dev/null")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postfix %s: %v\n%s\n%s", strings.Join(args, " "), err, out, readLog(logFile))
		}
	}
	runPostfix("check")
	runPostfix("start")
	t.Cleanup(func() {
		exec.Command(postfix, "-c", confDir, "stop").Run()
		if t.Failed() {
			t.Logf("maillog:\n%s", readLog(logFile))
		}
	})
	smtpAddr := "127.0.0.1:" + strconv.Itoa(smtpPort)
	waitListening(t, smtpAddr)

	msg := "From: Sender <sender@example.net>\r\n" +
		"To: Alice <alice@example.org>, bob@example.org\r\n" +
		"Subject: through postfix\r\n" +
		"Date: Tue, 3 Feb 2026 10:00:00 +0000\r\n" +
		"Message-ID: <postfix-test-1@example.net>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n" +
		"\r\n" +
		"Hello Alice,\r\n" +
		".a line starting with a dot\r\n" +
		"..and one with two\r\n" +
		"From the start of a line\r\n" +
		"\r\n" +
		"Bye.\r\n"
	sendMail(t, smtpAddr, "sender@example.net", []string{"alice@example.org", "alice+lists@example.org", "bob@example.org"}, msg)

	// Read it back over IMAP.
	c := dialIMAP(t, imapLn.Addr().String())
	c.cmd("LOGIN alice pw-alice")
	var got []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		got = c.fetchAll()
		if len(got) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(got) != 2 {
		t.Fatalf("alice has %d messages after 60s, want 2 (one per address)", len(got))
	}
	for _, b := range got {
		checkDelivered(t, b, msg, []string{"alice@example.org", "alice+lists@example.org"})
	}
	// bob is over quota: Postfix got 552 5.2.2 and bounced it.
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(readLog(logFile), "5.2.2") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if log := readLog(logFile); !strings.Contains(log, "to=<bob@example.org>") || !strings.Contains(log, "5.2.2") {
		t.Fatalf("no 5.2.2 for bob in the Postfix log")
	}
	if n := len(e.bodies("bob", "INBOX")); n != 0 {
		t.Fatalf("bob over quota has %d messages", n)
	}
}

// checkDelivered checks that b is msg preceded only by trace headers, one
// of them Delivered-To naming one of rcpts.
func checkDelivered(t *testing.T, b, msg string, rcpts []string) {
	t.Helper()
	if !strings.HasSuffix(b, msg) {
		t.Fatalf("delivered message does not end with the sent bytes:\n%q\nsent:\n%q", b, msg)
	}
	prefix := strings.TrimSuffix(b, msg)
	sawDeliveredTo, sawReceived := false, false
	for _, line := range strings.SplitAfter(prefix, "\r\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "Return-Path: <sender@example.net>\r\n"):
		case strings.HasPrefix(line, "Delivered-To: "):
			for _, r := range rcpts {
				if line == "Delivered-To: "+r+"\r\n" {
					sawDeliveredTo = true
				}
			}
		case strings.HasPrefix(line, "Received: "):
			sawReceived = true
		case line[0] == ' ' || line[0] == '\t':
		default:
			t.Fatalf("unexpected header before the message: %q", line)
		}
	}
	if !sawDeliveredTo || !sawReceived || !strings.HasPrefix(prefix, "Return-Path: ") {
		t.Fatalf("trace headers incomplete: %q", prefix)
	}
}

func readLog(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sendMail submits msg with swaks, or with Python's smtplib when swaks is
// missing or TERN_TEST_SMTP_CLIENT=python.
func sendMail(t *testing.T, addr, from string, to []string, msg string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "msg.eml")
	host, port, _ := net.SplitHostPort(addr)
	var cmd *exec.Cmd
	if swaks, err := exec.LookPath("swaks"); err == nil && os.Getenv("TERN_TEST_SMTP_CLIENT") != "python" {
		// swaks ends the data with "\r\n.\r\n" itself, so the file must
		// not carry the message's last CRLF.
		writeFile(t, f, strings.TrimSuffix(msg, "\r\n"), time.Time{})
		cmd = exec.Command(swaks, "--server", host, "--port", port, "--from", from, "--to", strings.Join(to, ","),
			"--data", f, "--helo", "client.example.net", "--silent", "2")
	} else {
		writeFile(t, f, msg, time.Time{})
		py := `import smtplib, sys
data = open(sys.argv[3], "rb").read()
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.sendmail(sys.argv[4], sys.argv[5:], data)
`
		cmd = exec.Command("python3", append([]string{"-c", py, host, port, f, from}, to...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("submitting mail: %v\n%s", err, out)
	}
}

// imapClient is a minimal raw IMAP client.
type imapClient struct {
	t   *testing.T
	nc  net.Conn
	br  *bufio.Reader
	tag int
}

func dialIMAP(t *testing.T, addr string) *imapClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(2 * time.Minute))
	c := &imapClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.line() // greeting
	return c
}

func (c *imapClient) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("imap read: %v", err)
	}
	return l
}

// cmd runs a command and returns its untagged lines; literals are
// returned as separate elements.
func (c *imapClient) cmd(s string) []string {
	c.t.Helper()
	c.tag++
	tag := "t" + strconv.Itoa(c.tag)
	fmt.Fprintf(c.nc, "%s %s\r\n", tag, s)
	var out []string
	for {
		l := c.line()
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				c.t.Fatalf("%s: %s", s, l)
			}
			return out
		}
		out = append(out, l)
		if i := strings.LastIndexByte(l, '{'); i >= 0 && strings.HasSuffix(l, "}\r\n") {
			n, err := strconv.Atoi(l[i+1 : len(l)-3])
			if err == nil {
				buf := make([]byte, n)
				if _, err := io.ReadFull(c.br, buf); err != nil {
					c.t.Fatal(err)
				}
				out = append(out, string(buf))
			}
		}
	}
}

// fetchAll returns the raw messages of INBOX (BODY.PEEK[]) in order.
func (c *imapClient) fetchAll() []string {
	c.t.Helper()
	sel := c.cmd("EXAMINE INBOX")
	exists := 0
	for _, l := range sel {
		if strings.HasSuffix(l, " EXISTS\r\n") {
			fmt.Sscanf(l, "* %d EXISTS", &exists)
		}
	}
	if exists == 0 {
		return nil
	}
	lines := c.cmd("FETCH 1:* BODY.PEEK[]")
	var out []string
	for i, l := range lines {
		if strings.HasPrefix(l, "* ") && strings.HasSuffix(l, "}\r\n") && i+1 < len(lines) {
			out = append(out, lines[i+1])
		}
	}
	return out
}
