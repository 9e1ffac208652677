package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/config"
)

const deliverMsg = "From: a@example.net\nTo: alice@example.org\nSubject: hi\n\nHello.\n"

// storedBodies opens the data directory and returns user's messages in
// mailbox, oldest first.
func storedBodies(t *testing.T, dir, user, mailbox string) []string {
	t.Helper()
	ctx := context.Background()
	st, err := openStore(ctx, &config.Config{DataDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.Account(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mi, err := a.Mailbox(ctx, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	_, uids, err := a.Snapshot(ctx, mi.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range uids {
		b, err := a.OpenBody(ctx, mi.ID, u)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
		b.Close()
		out = append(out, string(data))
	}
	return out
}

func TestDeliverExitCodes(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	// Delivered, with a leading mbox From_ line dropped and LF turned into CRLF.
	r := runT(t, "From a@example.net Mon Jan  6 10:00:00 2025\n"+deliverMsg, "deliver", "--user", "alice", "--data", dir,
		"--from", "a@example.net", "--recipient", "alice@example.org")
	if r.code != 0 {
		t.Fatalf("deliver: %+v", r)
	}
	want := "Return-Path: <a@example.net>\r\nDelivered-To: alice@example.org\r\n" + strings.ReplaceAll(deliverMsg, "\n", "\r\n")
	if got := storedBodies(t, dir, "alice", "INBOX"); len(got) != 1 || got[0] != want {
		t.Fatalf("INBOX = %q, want [%q]", got, want)
	}
	// --mailbox and +detail.
	if r := runT(t, deliverMsg, "deliver", "--user", "alice", "--mailbox", "Archive", "--data", dir); r.code != 0 {
		t.Fatalf("deliver --mailbox: %+v", r)
	}
	if r := runT(t, deliverMsg, "deliver", "--user", "alice+Sent", "--data", dir); r.code != 0 {
		t.Fatalf("deliver +detail: %+v", r)
	}
	if n := len(storedBodies(t, dir, "alice", "Archive")); n != 1 {
		t.Fatalf("Archive has %d", n)
	}
	if got := storedBodies(t, dir, "alice", "Sent"); len(got) != 1 || got[0] != strings.ReplaceAll(deliverMsg, "\n", "\r\n") {
		t.Fatalf("Sent = %q (no trace headers without --from/--recipient)", got)
	}
	// 67: no such user.
	if r := runT(t, deliverMsg, "deliver", "--user", "nobody", "--data", dir); r.code != 67 {
		t.Fatalf("unknown user: %+v", r)
	}
	// 64: usage; 65: empty input.
	if r := runT(t, deliverMsg, "deliver", "--data", dir); r.code != 64 {
		t.Fatalf("no --user: %+v", r)
	}
	if r := runT(t, "\n", "deliver", "--user", "alice", "--data", dir); r.code != 65 {
		t.Fatalf("empty message: %+v", r)
	}
	// 77 over quota; 75 with quota_full_tempfail.
	if r := runT(t, "", "user", "quota", "alice", "--messages", "3", "--data", dir); r.code != 0 || !strings.Contains(r.stdout, "messages 3 of 3") {
		t.Fatalf("user quota: %+v", r)
	}
	if r := runT(t, deliverMsg, "deliver", "--user", "alice", "--data", dir); r.code != 77 || !strings.Contains(r.stderr, "5.2.2") {
		t.Fatalf("over quota: %+v", r)
	}
	cfgFile := filepath.Join(t.TempDir(), "tern.toml")
	os.WriteFile(cfgFile, []byte("data_dir = "+fmt.Sprintf("%q", dir)+"\n[lmtp]\nquota_full_tempfail = true\n"), 0o600)
	if r := runT(t, deliverMsg, "deliver", "--user", "alice", "--config", cfgFile); r.code != 75 {
		t.Fatalf("over quota, tempfail: %+v", r)
	}
	// 75: storage unavailable (the data directory is a file).
	bad := filepath.Join(t.TempDir(), "file")
	os.WriteFile(bad, nil, 0o600)
	if r := runT(t, deliverMsg, "deliver", "--user", "alice", "--data", bad); r.code != 75 {
		t.Fatalf("broken storage: %+v", r)
	}
}

func TestUserQuotaCommand(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	runT(t, "pw\n", "user", "add", "alice", "--data", dir)
	r := runT(t, "", "user", "quota", "alice", "--storage", "2G", "--messages", "100000", "--data", dir)
	if r.code != 0 || r.stdout != "alice: storage 0 B of 2.0 GiB, messages 0 of 100000\n" {
		t.Fatalf("set: %+v", r)
	}
	r = runT(t, "", "user", "quota", "alice", "--storage", "none", "--data", dir)
	if r.code != 0 || r.stdout != "alice: storage 0 B of unlimited, messages 0 of 100000\n" {
		t.Fatalf("clear storage: %+v", r)
	}
	if r := runT(t, "", "user", "quota", "alice", "--storage", "2X", "--data", dir); r.code != exitUsage {
		t.Fatalf("bad size: %+v", r)
	}
	if r := runT(t, "", "user", "quota", "bob", "--data", dir); r.code != exitError {
		t.Fatalf("unknown user: %+v", r)
	}
	for in, want := range map[string]int64{"2G": 2 << 30, "500M": 500 << 20, "1.5k": 1536, "100KiB": 100 << 10, "7": 7, "unlimited": 0} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// TestServeLMTPAndDeliverWakeIdle runs tern serve with LMTP and checks
// that an IMAP session in IDLE wakes up for mail delivered over LMTP and
// for mail stored by tern deliver (another store instance, as another
// process would be, signalling through the notify socket).
func TestServeLMTPAndDeliverWakeIdle(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir)
	sigs := make(chan os.Signal, 1)
	addrs := make(chan [2]string, 4)
	var logBuf syncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &logBuf, stderr: &logBuf, signals: sigs,
		listening: func(proto, addr string) { addrs <- [2]string{proto, addr} }}
	done := make(chan int, 1)
	go func() {
		done <- e.run([]string{"serve", "--data", dir, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
			"--listen-lmtp", "127.0.0.1:0", "--listen-admin", "", "--listen-managesieve", "", "--insecure-auth"})
	}()
	got := map[string]string{}
	for len(got) < 2 {
		select {
		case a := <-addrs:
			got[a[0]] = a[1]
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, logBuf.String())
		case <-time.After(10 * time.Second):
			t.Fatalf("serve did not start: %s", logBuf.String())
		}
	}
	defer func() {
		sigs <- syscall.SIGTERM
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d: %s", code, logBuf.String())
		}
	}()

	nc, err := net.Dial("tcp", got["imap"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	readUntil := func(prefix string) {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v\n%s", prefix, err, logBuf.String())
			}
			if strings.HasPrefix(line, prefix) {
				return
			}
		}
	}
	readUntil("* OK")
	fmt.Fprintf(nc, "a LOGIN alice pw-alice\r\nb SELECT INBOX\r\nc IDLE\r\n")
	readUntil("b OK")
	readUntil("+ ")

	// LMTP.
	lc, err := net.Dial("tcp", got["lmtp"])
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	lc.SetDeadline(time.Now().Add(20 * time.Second))
	lr := bufio.NewReader(lc)
	fmt.Fprintf(lc, "LHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
	for {
		line, err := lr.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "354") {
			break
		}
	}
	fmt.Fprintf(lc, "Subject: via lmtp\r\n\r\nhi\r\n.\r\n")
	for {
		line, err := lr.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "250 ") && strings.Contains(line, "alice@example.org") {
			break
		}
		if line[0] == '4' || line[0] == '5' {
			t.Fatalf("lmtp: %q", line)
		}
	}
	readUntil("* 1 EXISTS")

	// tern deliver, a separate store instance.
	if r := runT(t, deliverMsg, "deliver", "--user", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("deliver: %+v", r)
	}
	readUntil("* 2 EXISTS")
	fmt.Fprintf(nc, "DONE\r\n")
	readUntil("c OK")
	if !strings.Contains(logBuf.String(), "proto=lmtp") {
		t.Errorf("no lmtp listening line: %s", logBuf.String())
	}
}
