package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
