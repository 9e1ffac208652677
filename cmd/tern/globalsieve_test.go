package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sieve.before and sieve.global_dir from the config file: tern deliver
// runs the operator's spam script before alice's own, and a global
// script that does not compile stops tern serve and tern deliver with
// its file and line.
func TestGlobalSieveConfig(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if r := runT(t, `require ["include"]; include :global "archive";`, "sieve", "put", "alice", "mine", "-", "--data", dir); r.code != 0 {
		t.Fatalf("sieve put: %+v", r)
	}
	if r := runT(t, "", "sieve", "activate", "alice", "mine", "--data", dir); r.code != 0 {
		t.Fatalf("sieve activate: %+v", r)
	}
	scripts := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(scripts, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spam := write("spam.sieve", `require ["fileinto", "mailbox"];
if header :is "X-Spam" "yes" { fileinto :create "Junk"; }`)
	globalDir := filepath.Join(scripts, "global")
	os.Mkdir(globalDir, 0o700)
	write("global/archive.sieve", `require ["fileinto", "mailbox"]; fileinto :create "Archive";`)
	conf := filepath.Join(dir, "tern.toml")
	writeConf := func(before string) {
		c := fmt.Sprintf("data_dir = %q\n[sieve]\nbefore = [%q]\nglobal_dir = %q\n", dir, before, globalDir)
		if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(spam)
	r := runT(t, "X-Spam: yes\r\nSubject: buy\r\n\r\nbody\r\n", "deliver", "--user", "alice", "--config", conf)
	if r.code != 0 || !strings.Contains(r.stdout, "mailbox Junk ") {
		t.Fatalf("spam: %+v", r)
	}
	r = runT(t, "Subject: hello\r\n\r\nbody\r\n", "deliver", "--user", "alice", "--config", conf)
	if r.code != 0 || !strings.Contains(r.stdout, "mailbox Archive ") {
		t.Fatalf("ham: %+v", r)
	}

	bad := write("bad.sieve", "keep;\nfileinto \"x\";\n")
	writeConf(bad)
	r = runT(t, "", "serve", "--config", conf, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "", "--listen-lmtp", "",
		"--listen-admin", "", "--listen-managesieve", "")
	if r.code == 0 || !strings.Contains(r.stderr, "sieve.before") || !strings.Contains(r.stderr, "bad.sieve: line 2") {
		t.Fatalf("serve with a broken before script: %+v", r)
	}
	r = runT(t, "Subject: hello\r\n\r\nbody\r\n", "deliver", "--user", "alice", "--config", conf)
	if r.code != exTempFail || !strings.Contains(r.stderr, "bad.sieve: line 2") {
		t.Fatalf("deliver with a broken before script: %+v", r)
	}
}

// SIGHUP reloads the global scripts of a running tern serve: a changed
// before script files the next LMTP delivery where the new version says;
// a version that does not compile is logged with its file and line and
// the previous one stays in use.
func TestServeReloadGlobalSieve(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	scripts := t.TempDir()
	before := filepath.Join(scripts, "before.sieve")
	writeBefore := func(src string) {
		t.Helper()
		if err := os.WriteFile(before, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fileInto := func(mb string) string {
		return fmt.Sprintf("require [\"fileinto\", \"mailbox\"];\nfileinto :create %q;\n", mb)
	}
	writeBefore(fileInto("First"))
	conf := filepath.Join(dir, "tern.toml")
	c := fmt.Sprintf("data_dir = %q\n[sieve]\nbefore = [%q]\n", dir, before)
	if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs, logBuf, sigs, stop := startServeSignals(t, 2, "--config", conf, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
		"--listen-lmtp", "127.0.0.1:0", "--listen-admin", "", "--insecure-auth")
	defer stop()
	msg := "From: a@example.net\r\nSubject: hi\r\n\r\nbody\r\n"
	reload := func(wantLog string) {
		t.Helper()
		n := strings.Count(logBuf.String(), wantLog)
		sigs <- syscall.SIGHUP
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(logBuf.String(), wantLog) == n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q after SIGHUP: %s", wantLog, logBuf.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ic := dialIMAP(t, addrs["imap"])
	ic.cmd("a1", "LOGIN alice pw-alice")
	messages := func(mb string) string {
		t.Helper()
		for _, l := range ic.cmd("s", "STATUS %s (MESSAGES)", mb) {
			if strings.HasPrefix(l, "* STATUS") {
				return strings.TrimSpace(l[strings.Index(l, "(")+1 : strings.LastIndex(l, ")")])
			}
		}
		return ""
	}

	lmtpDeliver(t, addrs["lmtp"], "a@example.net", "alice@example.org", msg)
	if got := messages("First"); got != "MESSAGES 1" {
		t.Fatalf("First before the reload: %s", got)
	}
	writeBefore(fileInto("Second"))
	reload("global sieve scripts loaded")
	lmtpDeliver(t, addrs["lmtp"], "a@example.net", "alice@example.org", msg)
	if got := messages("Second"); got != "MESSAGES 1" {
		t.Fatalf("Second after the reload: %s\n%s", got, logBuf.String())
	}

	writeBefore("require \"fileinto\";\nfileinto \"Third\"\nkeep;\n") // missing ';'
	reload("global sieve scripts not loaded; keeping the current ones")
	if !strings.Contains(logBuf.String(), "before.sieve: line 3") {
		t.Errorf("the error does not name the file and line: %s", logBuf.String())
	}
	lmtpDeliver(t, addrs["lmtp"], "a@example.net", "alice@example.org", msg)
	if got := messages("Second"); got != "MESSAGES 2" {
		t.Fatalf("Second after a failed reload: %s\n%s", got, logBuf.String())
	}
	if got := messages("INBOX"); got != "MESSAGES 0" {
		t.Fatalf("INBOX: %s", got)
	}
}
