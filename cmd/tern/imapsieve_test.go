package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/smtptest"
)

// sieve.imapsieve: a script named by a mailbox's /shared/imapsieve/script
// metadata runs when COPY (or MOVE) and APPEND add messages to it (RFC
// 6785). Spam training: moving a message into Junk flags it, files a
// copy and reports it to an address through the relay; APPEND into a
// mailbox whose script discards marks the new message \Deleted; a
// mailbox without the entry runs nothing; the capability carries the
// ManageSieve URL.
func TestServeIMAPSieve(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	train := `require ["environment", "imapsieve", "fileinto", "copy", "imap4flags", "mailbox"];
if environment :is "imap.cause" "COPY" {
    addflag "$Junk";
    fileinto :copy :create "Trained";
    redirect :copy "spam-report@example.net";
}`
	drop := `require ["environment", "imapsieve"]; if environment :is "imap.cause" "APPEND" { discard; }`
	watch := `require ["environment", "imapsieve", "imap4flags", "fileinto", "copy", "mailbox"];
if environment :is "imap.cause" "FLAG" {
    if allof (hasflag "\\Flagged", environment :contains "imap.changedflags" "\\Flagged") {
        fileinto :copy :create "Important";
    }
    if environment :contains "imap.changedflags" "\\Seen" { addflag "$readmark"; }
}`
	for name, src := range map[string]string{"train": train, "drop": drop, "watch": watch} {
		if r := runT(t, src, "sieve", "put", "alice", name, "-", "--data", dir); r.code != 0 {
			t.Fatalf("sieve put: %+v", r)
		}
	}
	sink := smtptest.Start(t)
	conf := filepath.Join(dir, "tern.toml")
	c := fmt.Sprintf("data_dir = %q\n[lmtp]\ndomains = [\"example.org\"]\n[sieve]\nsmtp = %q\nimapsieve = true\nimapsieve_url = \"sieve://mail.example.org\"\n", dir, sink.Addr)
	if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs, logBuf, stop := startServe(t, 1, "--config", conf, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
		"--listen-lmtp", "", "--listen-admin", "", "--listen-managesieve", "", "--insecure-auth")
	defer stop()

	ic := dialIMAP(t, addrs["imap"])
	ic.cmd("a1", "LOGIN alice pw-alice")
	if caps := strings.Join(ic.cmd("a2", "CAPABILITY"), ""); !strings.Contains(caps, " IMAPSIEVE=sieve://mail.example.org") {
		t.Fatalf("capabilities: %s", caps)
	}
	ic.cmd("a4", "CREATE Drop")
	ic.cmd("a5", `SETMETADATA Junk (/shared/imapsieve/script "train")`)
	ic.cmd("a6", `SETMETADATA Drop (/shared/imapsieve/script "drop")`)
	msg := "From: spammer@example.net\r\nTo: alice@example.org\r\nSubject: cheap pills\r\n\r\nbuy now\r\n"
	ic.cmd("a7", "APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(msg), msg, len(msg), msg)
	ic.cmd("a8", "APPEND Drop {%d+}\r\n%s", len(msg), msg)
	ic.cmd("a9", "SELECT INBOX")
	ic.cmd("b1", "MOVE 1 Junk")

	if got := strings.Join(ic.cmd("b2", "FETCH 1 FLAGS"), ""); strings.Contains(got, "$Junk") || strings.Contains(got, `\Deleted`) {
		t.Errorf("INBOX's message got flags (INBOX has no script): %s", got)
	}
	ic.cmd("b3", "SELECT Junk")
	if got := strings.Join(ic.cmd("b4", "FETCH 1 FLAGS"), ""); !strings.Contains(got, "$Junk") || strings.Contains(got, `\Deleted`) {
		t.Errorf("Junk: %s", got)
	}
	if got := strings.Join(ic.cmd("b5", "STATUS Trained (MESSAGES)"), ""); !strings.Contains(got, "MESSAGES 1") {
		t.Errorf("Trained: %s", got)
	}
	ic.cmd("b6", "SELECT Drop")
	if got := strings.Join(ic.cmd("b7", "FETCH 1 FLAGS"), ""); !strings.Contains(got, `\Deleted`) {
		t.Errorf("Drop: %s", got)
	}

	// The FLAG cause: STORE and the \Seen of FETCH BODY[] run the
	// script with the changed flags; the script's own flag changes do
	// not run it again.
	ic.cmd("c1", "CREATE Watch")
	ic.cmd("c2", `SETMETADATA Watch (/shared/imapsieve/script "watch")`)
	ic.cmd("c3", "APPEND Watch {%d+}\r\n%s", len(msg), msg)
	ic.cmd("c4", "SELECT Watch")
	ic.cmd("c5", `STORE 1 +FLAGS (\Flagged)`)
	ic.cmd("c6", "FETCH 1 BODY[]")
	ic.cmd("c7", `STORE 1 +FLAGS (\Answered)`)
	ic.cmd("c8", `STORE 1 -FLAGS (\Flagged)`)
	if got := strings.Join(ic.cmd("c9", "FETCH 1 FLAGS"), ""); !strings.Contains(got, "$readmark") || !strings.Contains(got, `\Seen`) {
		t.Errorf("Watch: %s", got)
	}
	if got := strings.Join(ic.cmd("d1", "STATUS Important (MESSAGES)"), ""); !strings.Contains(got, "MESSAGES 1") {
		t.Errorf("Important: %s", got)
	}

	deadline := time.Now().Add(20 * time.Second)
	for len(sink.Messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no report sent: %s", logBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := sink.Messages()
	if len(got) != 1 || got[0].From != "alice@example.org" || got[0].To[0] != "spam-report@example.net" || !strings.Contains(got[0].Data, "Subject: cheap pills") {
		t.Fatalf("relay got %+v", got)
	}
}
