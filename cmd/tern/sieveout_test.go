package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/smtptest"
)

// tern serve --sieve-smtp: a vacation script activated with tern sieve
// answers a message delivered over LMTP through the relay, once per
// sender, with the null envelope sender.
func TestServeSieveVacation(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	script := "require \"vacation\";\nvacation :subject \"Away\" \"Back on Monday.\";\n"
	if r := runT(t, script, "sieve", "put", "alice", "away", "-", "--data", dir); r.code != 0 {
		t.Fatalf("sieve put: %+v", r)
	}
	if r := runT(t, "", "sieve", "activate", "alice", "away", "--data", dir); r.code != 0 {
		t.Fatalf("sieve activate: %+v", r)
	}
	sink := smtptest.Start(t)
	addrs, logBuf, stopServe := startServe(t, 1, "--data", dir, "--listen-imap", "", "--listen-imaps", "",
		"--listen-lmtp", "127.0.0.1:0", "--listen-admin", "", "--sieve-smtp", sink.Addr)
	var once sync.Once
	stop := func() { once.Do(stopServe) }
	defer stop()

	for i := range 2 {
		lmtpDeliver(t, addrs["lmtp"], "friend@example.net", "alice@example.org",
			fmt.Sprintf("From: friend@example.net\r\nTo: alice@example.org\r\nSubject: hi\r\nMessage-ID: <%d@example.net>\r\n\r\nhello\r\n", i))
	}
	// Replies are queued before the LMTP reply; a spool without queued
	// files has sent them all.
	spool := filepath.Join(dir, "outbound", "queue")
	deadline := time.Now().Add(20 * time.Second)
	for {
		files, err := os.ReadDir(spool)
		if err == nil && len(files) == 0 && len(sink.Messages()) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vacation replies not sent (%d queued, %v): %s", len(files), err, logBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	got := sink.Messages()
	if len(got) != 1 || got[0].From != "" || len(got[0].To) != 1 || got[0].To[0] != "friend@example.net" ||
		!strings.Contains(got[0].Data, "\r\nSubject: Away\r\n") || !strings.Contains(got[0].Data, "\r\nIn-Reply-To: <0@example.net>\r\n") {
		t.Fatalf("relay got %+v", got)
	}
}

// lmtpDeliver sends one message over LMTP and wants it accepted.
func lmtpDeliver(t *testing.T, addr, from, rcpt, msg string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "LHLO x\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", from, rcpt)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "354") {
			break
		}
		if line[0] == '4' || line[0] == '5' {
			t.Fatalf("lmtp: %q", line)
		}
	}
	fmt.Fprintf(c, "%s.\r\n", msg)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "250 ") {
		t.Fatalf("lmtp DATA: %q %v", line, err)
	}
}

// tern deliver with sieve.smtp puts a redirect into the spool of
// data_dir/outbound; tern serve sends it.
func TestDeliverSieveRedirectSpool(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if r := runT(t, `redirect "alice@elsewhere.example";`, "sieve", "put", "alice", "fwd", "-", "--data", dir); r.code != 0 {
		t.Fatalf("sieve put: %+v", r)
	}
	if r := runT(t, "", "sieve", "activate", "alice", "fwd", "--data", dir); r.code != 0 {
		t.Fatalf("sieve activate: %+v", r)
	}
	sink := smtptest.Start(t)
	conf := filepath.Join(dir, "tern.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data_dir = %q\n[sieve]\nsmtp = %q\n", dir, sink.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runT(t, "Subject: fwd me\r\n\r\nbody\r\n", "deliver", "--user", "alice", "--from", "friend@example.net", "--config", conf); r.code != 0 {
		t.Fatalf("deliver: %+v", r)
	}
	spool := filepath.Join(dir, "outbound", "queue")
	if files, err := os.ReadDir(spool); err != nil || len(files) != 1 {
		t.Fatalf("spool after deliver: %v %v", files, err)
	}
	_, logBuf, stop := startServe(t, 1, "--config", conf, "--listen-imap", "", "--listen-imaps", "",
		"--listen-lmtp", "127.0.0.1:0", "--listen-admin", "")
	defer stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		files, err := os.ReadDir(spool)
		if err == nil && len(files) == 0 && len(sink.Messages()) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redirect not sent: %s", logBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := sink.Messages()
	if len(got) != 1 || got[0].From != "friend@example.net" || got[0].To[0] != "alice@elsewhere.example" ||
		!strings.HasPrefix(got[0].Data, "X-Tern-Loop: alice\r\n") || !strings.HasSuffix(got[0].Data, "Subject: fwd me\r\n\r\nbody\r\n") {
		t.Fatalf("relay got %+v", got)
	}
}

// sieve.smtp_tls_ca_file, smtp_username and smtp_password_file: tern
// serve sends a redirect over STARTTLS, verified against the CA file,
// authenticated.
func TestServeSieveRelayTLSAuth(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if r := runT(t, `redirect "alice@elsewhere.example";`, "sieve", "put", "alice", "fwd", "-", "--data", dir); r.code != 0 {
		t.Fatalf("sieve put: %+v", r)
	}
	if r := runT(t, "", "sieve", "activate", "alice", "fwd", "--data", dir); r.code != 0 {
		t.Fatalf("sieve activate: %+v", r)
	}
	sink := smtptest.StartWith(t, smtptest.Options{TLS: true, Username: "tern-relay", Password: "relay secret"})
	pwFile := filepath.Join(dir, "relay.pw")
	if err := os.WriteFile(pwFile, []byte("relay secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "tern.toml")
	c := fmt.Sprintf("data_dir = %q\n[sieve]\nsmtp = %q\nsmtp_require_tls = true\nsmtp_tls_ca_file = %q\nsmtp_username = \"tern-relay\"\nsmtp_password_file = %q\n",
		dir, sink.Addr, sink.CAFile, pwFile)
	if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs, logBuf, stop := startServe(t, 1, "--config", conf, "--listen-imap", "", "--listen-imaps", "",
		"--listen-lmtp", "127.0.0.1:0", "--listen-admin", "", "--listen-managesieve", "")
	defer stop()
	lmtpDeliver(t, addrs["lmtp"], "friend@example.net", "alice@example.org", "Subject: fwd\r\n\r\nbody\r\n")
	deadline := time.Now().Add(20 * time.Second)
	for len(sink.Messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("redirect not sent: %s", logBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := sink.Messages()
	if len(got) != 1 || !got[0].TLS || got[0].User != "tern-relay" || got[0].To[0] != "alice@elsewhere.example" {
		t.Fatalf("relay got %+v", got)
	}
}
