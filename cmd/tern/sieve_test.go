package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rejectBogus is a real checker for these tests: it refuses scripts
// containing "bogus", as the Sieve compiler refuses unknown commands.
func rejectBogus(src []byte) error {
	if bytes.Contains(src, []byte("bogus")) {
		return errors.New(`line 1: unknown command "bogus"`)
	}
	return nil
}

// runSieve runs a command with the rejecting checker.
func runSieve(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runChecked(t, rejectBogus, stdin, args...)
}

// runChecked runs a command with the given script checker.
func runChecked(t *testing.T, check func([]byte) error, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, sieveCheck: check}
	code := e.run(args)
	return result{code, out.String(), errb.String()}
}

func TestSieveCLI(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	script := "require \"fileinto\";\nfileinto \"Lists\";\n"
	file := filepath.Join(dir, "lists.sieve")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := func(r result, what string) result {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: %+v", what, r)
		}
		return r
	}
	fails := func(r result, what, msg string) {
		t.Helper()
		if r.code == 0 || !strings.Contains(r.stderr, msg) {
			t.Fatalf("%s: %+v, want failure with %q", what, r, msg)
		}
	}
	ok(runSieve(t, "", "sieve", "put", "alice", "lists", file, "--data", dir), "put file")
	ok(runSieve(t, "keep;\n", "sieve", "put", "--data", dir, "alice", "other", "-"), "put stdin")
	fails(runSieve(t, "bogus;\n", "sieve", "put", "alice", "bad", "-", "--data", dir), "put bad", `script "bad" not stored: line 1: unknown command "bogus"`)
	fails(runSieve(t, "keep;", "sieve", "put", "alice", "a\tb", "-", "--data", dir), "bad name", "invalid sieve script name")
	fails(runSieve(t, "", "sieve", "list", "nobody", "--data", dir), "unknown user", `no user "nobody"`)
	ok(runSieve(t, "", "sieve", "activate", "alice", "lists", "--data", dir), "activate")
	if r := ok(runSieve(t, "", "sieve", "list", "alice", "--data", dir), "list"); r.stdout != fmt.Sprintf("lists\t%d (active)\nother\t6\n", len(script)) {
		t.Fatalf("list: %q", r.stdout)
	}
	if r := ok(runSieve(t, "", "sieve", "get", "alice", "lists", "--data", dir), "get"); r.stdout != script {
		t.Fatalf("get: %q", r.stdout)
	}
	fails(runSieve(t, "", "sieve", "get", "alice", "nope", "--data", dir), "get missing", "no such sieve script")
	fails(runSieve(t, "", "sieve", "delete", "alice", "lists", "--data", dir), "delete active", "sieve script is active")

	// The default check is the Sieve compiler.
	fails(runT(t, "bogus;\n", "sieve", "put", "alice", "stale", "-", "--data", dir), "put with the default check", `unknown command "bogus"`)
	// A script stored without the check (as by an older tern) is checked
	// again before it becomes active.
	accept := func([]byte) error { return nil }
	ok(runChecked(t, accept, "bogus;\n", "sieve", "put", "alice", "stale", "-", "--data", dir), "put without a check")
	fails(runSieve(t, "", "sieve", "activate", "alice", "stale", "--data", dir), "activate bad", `script "stale" not activated`)

	ok(runSieve(t, "", "sieve", "deactivate", "alice", "--data", dir), "deactivate")
	ok(runSieve(t, "", "sieve", "delete", "alice", "lists", "--data", dir), "delete")
	if r := ok(runSieve(t, "", "sieve", "list", "alice", "--data", dir), "list"); r.stdout != "other\t6\nstale\t7\n" {
		t.Fatalf("list after delete: %q", r.stdout)
	}
	if r := runSieve(t, "", "sieve", "frob"); r.code != exitUsage {
		t.Fatalf("unknown subcommand: %+v", r)
	}
}

// sieveClient is a minimal ManageSieve client for these tests.
type sieveClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialSieve(t testing.TB, addr string) *sieveClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &sieveClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	if s := c.status(); !strings.HasPrefix(s, "OK") {
		t.Fatalf("greeting: %q", s)
	}
	return c
}

// status reads up to the response's status line and returns it.
func (c *sieveClient) status() string {
	c.t.Helper()
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if strings.HasPrefix(line, "OK") || strings.HasPrefix(line, "NO") || strings.HasPrefix(line, "BYE") {
			return strings.TrimSuffix(line, "\r\n")
		}
	}
}

func (c *sieveClient) do(cmd string) string {
	c.t.Helper()
	fmt.Fprintf(c.nc, "%s\r\n", cmd)
	return c.status()
}

func plainAuth(user, pass string) string {
	return `AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + `"`
}

// tern serve --listen-managesieve: a client stores and activates a
// script; the checker serve wires in (defaultSieveCheck) refuses a script
// that is not UTF-8; tern sieve sees the result. With --sieve-smtp on a port nothing listens on, tern starts
// and opens its outbound queue.
func TestServeManageSieve(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	addrs, logBuf, stop := startServe(t, 2, "--data", dir, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
		"--listen-lmtp", "", "--listen-admin", "", "--listen-managesieve", "127.0.0.1:0", "--insecure-auth",
		"--sieve-smtp", "127.0.0.1:1")
	if !strings.Contains(logBuf.String(), `msg="outbound mail queue" relay=127.0.0.1:1 queued=0`) {
		t.Errorf("no outbound queue log line: %s", logBuf.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, "outbound", "queue")); err != nil || !fi.IsDir() {
		t.Errorf("outbound spool: %v", err)
	}
	c := dialSieve(t, addrs["managesieve"])
	for _, step := range []struct{ cmd, want string }{
		{plainAuth("alice", "pw-alice"), `OK "Logged in"`},
		{"PUTSCRIPT \"bad\" {7+}\r\nkeep\xff;\n", `NO "script is not valid UTF-8"`},
		{`PUTSCRIPT "good" "keep;"`, `OK "Script stored"`},
		{`SETACTIVE "good"`, `OK "Active script set"`},
		{`LOGOUT`, `OK "Logout completed"`},
	} {
		if got := c.do(step.cmd); got != step.want {
			t.Fatalf("%q: %q, want %q", step.cmd, got, step.want)
		}
	}
	stop()
	if r := runT(t, "", "sieve", "list", "alice", "--data", dir); r.code != 0 || r.stdout != "good\t5 (active)\n" {
		t.Fatalf("sieve list: %+v", r)
	}
}

// IMAP and ManageSieve share one authenticator: failures over IMAP lock
// the user out of ManageSieve too.
func TestManageSieveSharesThrottling(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	conf := filepath.Join(dir, "tern.toml")
	if err := os.WriteFile(conf, []byte("[auth]\nmax_user_failures = 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs, _, stop := startServe(t, 2, "--data", dir, "--config", conf, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
		"--listen-lmtp", "", "--listen-admin", "", "--listen-managesieve", "127.0.0.1:0", "--insecure-auth")
	defer stop()
	imap, err := net.DialTimeout("tcp", addrs["imap"], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer imap.Close()
	imap.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(imap)
	br.ReadString('\n')
	for i := range 2 {
		fmt.Fprintf(imap, "a%d LOGIN alice wrong\r\n", i)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, fmt.Sprintf("a%d NO", i)) {
			t.Fatalf("IMAP LOGIN with a wrong password: %q %v", line, err)
		}
	}
	c := dialSieve(t, addrs["managesieve"])
	if got := c.do(plainAuth("alice", "pw-alice")); got != `NO (TRYLATER) "Too many failed attempts; try again later"` {
		t.Fatalf("ManageSieve login after IMAP failures: %q", got)
	}
}

// TestSieveTestCommand: tern sieve test prints the actions of a script
// for a message and the copies delivery would store, and refuses a
// script that does not compile.
func TestSieveTestCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sieve")
	msg := filepath.Join(dir, "m.eml")
	if err := os.WriteFile(script, []byte(`require ["fileinto", "imap4flags"];
if header :contains "List-Id" "acme" { fileinto :flags "\\Seen" "Lists/acme"; stop; }
if address :is "from" "boss@example.org" { addflag "\\Flagged"; }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(m string) {
		t.Helper()
		if err := os.WriteFile(msg, []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("From: a@example.org\r\nList-Id: <acme.lists.example.org>\r\nSubject: x\r\n\r\nhi\r\n")
	r := runT(t, "", "sieve", "test", script, msg, "--envelope-from", "a@example.org", "--envelope-to", "me@example.org")
	if r.code != 0 || !strings.Contains(r.stdout, `fileinto :flags ["\\Seen"] "Lists/acme"`) ||
		strings.Contains(r.stdout, "implicit keep") || !strings.Contains(r.stdout, `store in "Lists/acme"`) {
		t.Fatalf("list mail: %+v", r)
	}
	write("From: boss@example.org\r\nSubject: y\r\n\r\nhi\r\n")
	r = runT(t, "", "sieve", "test", script, msg)
	if r.code != 0 || !strings.Contains(r.stdout, "implicit keep") || !strings.Contains(r.stdout, `store in "INBOX" flags [\Flagged]`) {
		t.Fatalf("boss mail: %+v", r)
	}
	if err := os.WriteFile(script, []byte("bogus;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r = runT(t, "", "sieve", "test", script, msg); r.code == 0 || !strings.Contains(r.stderr, `unknown command "bogus"`) {
		t.Fatalf("bad script: %+v", r)
	}
}

// TestManageSieveDefaultAddressTaken: ManageSieve listens on
// 127.0.0.1:4190 by default; when that address is taken, tern serve warns
// and runs without it, while the same address given explicitly is an
// error that stops the server.
func TestManageSieveDefaultAddressTaken(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:4190")
	if err != nil {
		// Another process has it (another test's tern serve, a real
		// ManageSieve server) and may free it at any moment, so whether
		// serve finds it taken cannot be known.
		t.Skipf("127.0.0.1:4190 is in use by another process: %v", err)
	}
	defer ln.Close()
	base := []string{"serve", "--data", dir, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
		"--listen-lmtp", "", "--listen-admin", ""}

	sigs := make(chan os.Signal, 1)
	addrs := make(chan [2]string, 4)
	var logBuf syncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &logBuf, stderr: &logBuf, signals: sigs,
		listening: func(proto, addr string) { addrs <- [2]string{proto, addr} }}
	done := make(chan int, 1)
	go func() { done <- e.run(base) }()
	select {
	case a := <-addrs:
		if a[0] != "imap" {
			t.Fatalf("first listener %v, want imap", a)
		}
	case code := <-done:
		t.Fatalf("serve exited with %d although only the default ManageSieve address was taken: %s", code, logBuf.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not start: %s", logBuf.String())
	}
	if !strings.Contains(logBuf.String(), "ManageSieve listener not started") {
		t.Errorf("no warning about the taken default address: %s", logBuf.String())
	}
	sigs <- os.Interrupt
	<-done

	r := runT(t, "", append(base, "--listen-managesieve", "127.0.0.1:4190")...)
	if r.code == 0 || !strings.Contains(r.stderr, "listen managesieve") {
		t.Fatalf("explicit taken address: %+v", r)
	}
}

// tern sieve test runs the configured global scripts around SCRIPT as
// delivery does: a before script that files spam ends the sequence
// (SCRIPT never runs), a before script's header edit is seen by SCRIPT,
// the after script runs while the keep is in effect; --no-global runs
// SCRIPT alone.
func TestSieveTestGlobalScripts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := write("before.sieve", `require ["fileinto", "editheader"];
if header :contains "X-Spam-Flag" "YES" { fileinto "Junk"; stop; }
addheader "X-Scanned" "clean";`)
	after := write("after.sieve", `require ["fileinto", "copy"]; fileinto :copy "Archive";`)
	user := write("user.sieve", `require "fileinto"; if header :is "X-Scanned" "clean" { fileinto "Scanned"; }`)
	conf := write("tern.toml", fmt.Sprintf("data_dir = %q\n[sieve]\nbefore = [%q]\nafter = [%q]\n", dir, before, after))
	spam := write("spam.eml", "From: a@example.net\r\nX-Spam-Flag: YES\r\nSubject: pills\r\n\r\nbuy\r\n")
	ham := write("ham.eml", "From: a@example.net\r\nSubject: hello\r\n\r\nhi\r\n")

	r := runT(t, "", "sieve", "test", user, spam, "--config", conf)
	if r.code != 0 || !strings.Contains(r.stdout, before+":\n") || !strings.Contains(r.stdout, `fileinto "Junk"`) ||
		strings.Contains(r.stdout, "user script:") || !strings.Contains(r.stdout, `store in "Junk"`) || strings.Contains(r.stdout, "Archive") {
		t.Fatalf("spam: %+v", r)
	}
	r = runT(t, "", "sieve", "test", user, ham, "--config", conf)
	if r.code != 0 || !strings.Contains(r.stdout, `addheader "X-Scanned" "clean"`) || !strings.Contains(r.stdout, "user script:\n") ||
		!strings.Contains(r.stdout, `store in "Scanned"`) || strings.Contains(r.stdout, `store in "INBOX"`) ||
		strings.Contains(r.stdout, after+":") {
		t.Fatalf("ham: %+v", r)
	}
	// Without the before script's header the user script keeps, so the
	// after script runs.
	r = runT(t, "", "sieve", "test", user, ham, "--config", conf, "--no-global")
	if r.code != 0 || strings.Contains(r.stdout, before) || strings.Contains(r.stdout, "Scanned") ||
		!strings.Contains(r.stdout, "implicit keep") || !strings.Contains(r.stdout, `store in "INBOX"`) || strings.Contains(r.stdout, "Archive") {
		t.Fatalf("--no-global: %+v", r)
	}
	write("before.sieve", `keep;`)
	r = runT(t, "", "sieve", "test", user, ham, "--config", conf)
	if r.code != 0 || !strings.Contains(r.stdout, after+":\n") || !strings.Contains(r.stdout, `store in "INBOX"`) ||
		!strings.Contains(r.stdout, `store in "Archive"`) {
		t.Fatalf("after script: %+v", r)
	}
	write("before.sieve", "frobnicate;\n")
	if r = runT(t, "", "sieve", "test", user, ham, "--config", conf); r.code == 0 || !strings.Contains(r.stderr, "before.sieve: line 1") {
		t.Fatalf("broken before script: %+v", r)
	}
}
