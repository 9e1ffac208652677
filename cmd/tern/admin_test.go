package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tern serve with the admin listener and log.format = "json" from a
// config file: /healthz, /readyz and /metrics answer while it serves,
// every log line is JSON, and the session end line carries the session id.
func TestServeAdminJSONLog(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw-alice\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	cfgPath := filepath.Join(t.TempDir(), "tern.toml")
	cfg := fmt.Sprintf("data_dir = %q\n[listen]\nimap = \"\"\nimaps = \"127.0.0.1:0\"\nlmtp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nmanagesieve = \"\"\n[log]\nformat = \"json\"\n", dir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	addrs := make(chan [2]string, 4)
	var logBuf syncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &logBuf, stderr: &logBuf, signals: sigs,
		listening: func(proto, addr string) { addrs <- [2]string{proto, addr} }}
	done := make(chan int, 1)
	go func() { done <- e.run([]string{"serve", "--config", cfgPath}) }()
	got := map[string]string{}
	for len(got) < 3 {
		select {
		case a := <-addrs:
			got[a[0]] = a[1]
		case code := <-done:
			t.Fatalf("serve exited early with %d: %s", code, logBuf.String())
		case <-time.After(10 * time.Second):
			t.Fatalf("serve did not start: %s", logBuf.String())
		}
	}
	admin := "http://" + got["admin"]
	httpGet := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := httpGet("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for code, body := httpGet("/readyz"); code != 200; code, body = httpGet("/readyz") {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}

	pemData, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	tc, err := tls.Dial("tcp", got["imaps"], &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(tc)
	fmt.Fprintf(tc, "a1 LOGIN alice pw-alice\r\na2 SELECT INBOX\r\na3 LOGOUT\r\n")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("imap: %v", err)
		}
		if strings.HasPrefix(line, "a3 ") {
			break
		}
	}
	tc.Close()

	_, body := httpGet("/metrics")
	for _, want := range []string{
		`tern_logins_total{result="success"} 1`,
		`tern_commands_total{command="SELECT",result="OK"} 1`,
		`tern_connections_accepted_total{listener="imaps"} 1`,
		`tern_store_operation_duration_seconds_count{op="snapshot"}`,
		`tern_index_mailboxes `,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
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

	var ended map[string]any
	listening := map[string]bool{}
	for line := range strings.Lines(logBuf.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch r["msg"] {
		case "session ended":
			ended = r
		case "listening":
			listening[fmt.Sprint(r["proto"])] = true
		}
	}
	if !listening["admin"] {
		t.Errorf("no listening line for the admin listener: %s", logBuf.String())
	}
	if ended == nil || ended["session"] == nil || ended["session"] == "" || ended["user"] != "alice" || ended["reason"] != "logout" {
		t.Fatalf("session end line: %v", ended)
	}
}
