package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/config"
)

type result struct {
	code           int
	stdout, stderr string
}

func runT(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func needStore(t testing.TB) {
	t.Helper()
	if !haveStore {
		t.Skip("storage backend not built in")
	}
}

func TestUsageAndHelp(t *testing.T) {
	if r := runT(t, ""); r.code != exitUsage || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("no args: %+v", r)
	}
	if r := runT(t, "", "--help"); r.code != exitOK || !strings.Contains(r.stdout, "tern serve") {
		t.Errorf("--help: %+v", r)
	}
	if r := runT(t, "", "frobnicate"); r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %+v", r)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-h"}, "--listen-imaps"},
		{[]string{"serve", "--help"}, "Run the IMAP server"},
		{[]string{"user", "-h"}, "Manage users"},
		{[]string{"user", "add", "-h"}, "Create user NAME"},
		{[]string{"user", "passwd", "--help"}, "new password"},
		{[]string{"user", "del", "-h"}, "Delete user NAME"},
		{[]string{"user", "list", "-h"}, "List all users"},
		{[]string{"cert", "-h"}, "fingerprints"},
		{[]string{"version", "-h"}, "version"},
	} {
		r := runT(t, "", tc.args...)
		if r.code != exitOK || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("%v: code %d, stdout %q; want 0 and %q", tc.args, r.code, r.stdout, tc.want)
		}
	}
	for _, args := range [][]string{
		{"user"},
		{"user", "rename", "x"},
		{"user", "add"},
		{"user", "add", "a", "b"},
		{"user", "list", "extra"},
		{"user", "add", "a", "--bogus"},
		{"serve", "--listen-imap"},
		{"serve", "stray"},
		{"cert", "--nope"},
		{"version", "x"},
	} {
		if r := runT(t, "", args...); r.code != exitUsage || r.stderr == "" {
			t.Errorf("%v: code %d stderr %q; want usage error", args, r.code, r.stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	r := runT(t, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "tern dev (") || !strings.Contains(r.stdout, runtime.Version()) {
		t.Fatalf("version: %+v", r)
	}
}

func TestParseInterleaved(t *testing.T) {
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	for _, tc := range []struct {
		args []string
		pos  []string
		data string
	}{
		{[]string{"alice"}, []string{"alice"}, "./tern-data"},
		{[]string{"alice", "--data", "/d"}, []string{"alice"}, "/d"},
		{[]string{"--data", "/d", "alice"}, []string{"alice"}, "/d"},
		{[]string{"-data=/d", "alice"}, []string{"alice"}, "/d"},
		{[]string{"--", "-weird"}, []string{"-weird"}, "./tern-data"},
		{[]string{"--data", "/d", "--", "--data"}, []string{"--data"}, "/d"},
	} {
		c := command{name: "t", args: "NAME", nargs: 1}
		fs := e.newFlagSet(c)
		data := fs.String("data", "./tern-data", "")
		pos, _, done := e.parse(c, fs, tc.args)
		if done || !slices.Equal(pos, tc.pos) || *data != tc.data {
			t.Errorf("parse(%q) = %q data=%q done=%v; want %q data=%q", tc.args, pos, *data, done, tc.pos, tc.data)
		}
	}
}

func TestUserCommands(t *testing.T) {
	needStore(t)
	dir := t.TempDir()

	if r := runT(t, "s3cret pw\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	// Flags before the positional work too; CRLF is stripped.
	if r := runT(t, "bob-pw\r\n", "user", "add", "--data", dir, "bob"); r.code != 0 {
		t.Fatalf("user add bob: %+v", r)
	}
	if r := runT(t, "x\n", "user", "add", "alice", "--data", dir); r.code != exitError || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("duplicate add: %+v", r)
	}
	if r := runT(t, "\n", "user", "add", "carol", "--data", dir); r.code != exitError || !strings.Contains(r.stderr, "empty password") {
		t.Fatalf("empty password: %+v", r)
	}
	if r := runT(t, "x\n", "user", "add", "bad name", "--data", dir); r.code != exitUsage {
		t.Fatalf("bad name: %+v", r)
	}
	r := runT(t, "", "user", "list", "--data", dir)
	if r.code != 0 || r.stdout != "alice\nbob\n" {
		t.Fatalf("user list: %+v", r)
	}

	checkPassword := func(user, pw string, want bool) {
		t.Helper()
		st, err := openStore(context.Background(), &config.Config{DataDir: dir}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		h, err := st.PasswordHash(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := auth.VerifyPassword(h, pw); err != nil || ok != want {
			t.Fatalf("password %q for %s: ok=%v err=%v, want %v", pw, user, ok, err, want)
		}
	}
	checkPassword("alice", "s3cret pw", true)
	checkPassword("bob", "bob-pw", true)

	// Default mailboxes, with special use, all subscribed.
	func() {
		ctx := context.Background()
		st, err := openStore(ctx, &config.Config{DataDir: dir}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		acct, err := st.Account(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		defer acct.Close()
		mbs, err := acct.Mailboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, mb := range mbs {
			got[mb.Name] = mb.SpecialUse
		}
		want := map[string]string{"INBOX": "", "Drafts": `\Drafts`, "Sent": `\Sent`, "Trash": `\Trash`, "Junk": `\Junk`, "Archive": `\Archive`}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("mailboxes %v, want %v", got, want)
		}
		subs, err := acct.Subscriptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(subs)
		if want := []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}; !slices.Equal(subs, want) {
			t.Errorf("subscriptions %v, want %v", subs, want)
		}
	}()

	if r := runT(t, "new pw\n", "user", "passwd", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("passwd: %+v", r)
	}
	checkPassword("alice", "new pw", true)
	checkPassword("alice", "s3cret pw", false)
	if r := runT(t, "x\n", "user", "passwd", "nobody", "--data", dir); r.code != exitError || !strings.Contains(r.stderr, `no user "nobody"`) {
		t.Fatalf("passwd unknown: %+v", r)
	}

	if r := runT(t, "", "user", "del", "--data", dir, "alice"); r.code != 0 {
		t.Fatalf("del: %+v", r)
	}
	if r := runT(t, "", "user", "del", "alice", "--data", dir); r.code != exitError {
		t.Fatalf("del again: %+v", r)
	}
	if r := runT(t, "", "user", "list", "--data", dir); r.code != 0 || r.stdout != "bob\n" {
		t.Fatalf("list after del: %+v", r)
	}
}

var sha256Line = regexp.MustCompile(`(?m)^SHA-256: +((?:[0-9A-F]{2}:){31}[0-9A-F]{2})$`)

func TestCertGenerationAndReuse(t *testing.T) {
	dir := t.TempDir()
	r1 := runT(t, "", "cert", "--data", dir)
	if r1.code != 0 || !strings.Contains(r1.stderr, "generated") {
		t.Fatalf("first cert: %+v", r1)
	}
	if !strings.Contains(r1.stdout, filepath.Join(dir, "tls", "cert.pem")) || !strings.Contains(r1.stdout, "localhost") {
		t.Fatalf("cert output: %s", r1.stdout)
	}
	m1 := sha256Line.FindStringSubmatch(r1.stdout)
	if m1 == nil {
		t.Fatalf("no SHA-256 line in %q", r1.stdout)
	}
	r2 := runT(t, "", "cert", "--data", dir)
	if r2.code != 0 || strings.Contains(r2.stderr, "generated") {
		t.Fatalf("second cert: %+v", r2)
	}
	if m2 := sha256Line.FindStringSubmatch(r2.stdout); m2 == nil || m2[1] != m1[1] {
		t.Fatalf("fingerprint changed: %q vs %q", r1.stdout, r2.stdout)
	}
}

// Config file values apply; explicit flags beat them.
func TestConfigPrecedence(t *testing.T) {
	fileDir, flagDir := t.TempDir(), t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "tern.toml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, "data_dir = %q\n", fileDir), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runT(t, "", "cert", "--config", cfgPath); r.code != 0 || !strings.Contains(r.stdout, fileDir) {
		t.Fatalf("config data_dir: %+v", r)
	}
	if r := runT(t, "", "cert", "--config", cfgPath, "--data", flagDir); r.code != 0 || !strings.Contains(r.stdout, flagDir) {
		t.Fatalf("--data over config: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(flagDir, "tls", "cert.pem")); err != nil {
		t.Fatalf("cert not in flag dir: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[limits]\nmax_conns = 0\n"), 0o644)
	if r := runT(t, "", "cert", "--config", bad); r.code != exitError || !strings.Contains(r.stderr, "limits.max_conns") {
		t.Fatalf("invalid config: %+v", r)
	}
	if r := runT(t, "", "serve", "--config", filepath.Join(t.TempDir(), "missing.toml")); r.code != exitError {
		t.Fatalf("missing config: %+v", r)
	}
}

// syncBuffer is a goroutine-safe bytes.Buffer for the server's log.
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

func TestServe(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}

	sigs := make(chan os.Signal, 1)
	addrs := make(chan [2]string, 4)
	var logBuf syncBuffer
	e := &env{
		stdin: strings.NewReader(""), stdout: &logBuf, stderr: &logBuf, signals: sigs,
		listening: func(proto, addr string) { addrs <- [2]string{proto, addr} },
	}
	done := make(chan int, 1)
	go func() {
		done <- e.run([]string{"serve", "--data", dir, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "127.0.0.1:0", "--listen-lmtp", "127.0.0.1:0", "--listen-admin", "", "--listen-managesieve", ""})
	}()
	got := map[string]string{}
	for len(got) < 2 {
		select {
		case a := <-addrs:
			got[a[0]] = a[1]
		case code := <-done:
			t.Fatalf("serve exited early with %d: %s", code, logBuf.String())
		case <-time.After(10 * time.Second):
			t.Fatalf("serve did not start: %s", logBuf.String())
		}
	}
	for _, proto := range []string{"imap", "imaps"} {
		if !strings.Contains(logBuf.String(), "msg=listening proto="+proto+" addr="+got[proto]) {
			t.Errorf("no listening log line for %s in %q", proto, logBuf.String())
		}
	}

	// Plain IMAP greets.
	c, err := net.DialTimeout("tcp", got["imap"], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
		t.Fatalf("imap greeting %q %v", line, err)
	}
	c.Close()

	// IMAPS with the generated certificate, and a LOGIN.
	login := func() string {
		pemData, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemData)
		tc, err := tls.Dial("tcp", got["imaps"], &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("imaps: %v", err)
		}
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(tc)
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
			t.Fatalf("imaps greeting %q %v", line, err)
		}
		fmt.Fprintf(tc, "a1 LOGIN alice pw-alice\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if strings.HasPrefix(line, "a1 ") {
				return line
			}
		}
	}
	if line := login(); !strings.HasPrefix(line, "a1 OK") {
		t.Fatalf("login: %q", line)
	}

	// SIGHUP reloads and keeps serving.
	sigs <- syscall.SIGHUP
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logBuf.String(), "certificate reloaded") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logBuf.String(), "certificate reloaded") {
		t.Fatalf("no reload logged: %s", logBuf.String())
	}
	if line := login(); !strings.HasPrefix(line, "a1 OK") {
		t.Fatalf("login after SIGHUP: %q", line)
	}

	sigs <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d: %s", code, logBuf.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	if _, err := net.DialTimeout("tcp", got["imap"], time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}

func TestServeListenError(t *testing.T) {
	needStore(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := runT(t, "", "serve", "--data", t.TempDir(), "--listen-imap", ln.Addr().String(), "--listen-imaps", "", "--listen-admin", "")
	if r.code != exitError || !strings.Contains(r.stderr, "listen imap") {
		t.Fatalf("busy port: %+v", r)
	}
}

func TestTakeCPUProfileFlag(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpu.pprof")
	rest, stop, err := takeCPUProfileFlag([]string{"--data", "d", "--cpuprofile", p, "--insecure-auth"})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if strings.Join(rest, " ") != "--data d --insecure-auth" {
		t.Fatalf("rest = %q", rest)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
		t.Fatalf("profile not written: %v", err)
	}
	rest, _, err = takeCPUProfileFlag([]string{"--data", "d"})
	if err != nil || len(rest) != 2 {
		t.Fatalf("without flag: %q %v", rest, err)
	}
	if _, _, err := takeCPUProfileFlag([]string{"--cpuprofile"}); err == nil {
		t.Fatal("missing file accepted")
	}
}
