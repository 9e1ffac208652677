package managesieve

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sieve-connect (Debian package sieve-connect), a ManageSieve client we
// did not write, uploads, lists, activates, downloads, checks and deletes
// scripts over STARTTLS with AUTHENTICATE PLAIN, verifying our
// certificate.
func TestSieveConnect(t *testing.T) {
	bin, err := exec.LookPath("sieve-connect")
	if err != nil {
		t.Skip("sieve-connect not installed (apt-get install sieve-connect); skipping the real-client test")
	}
	ts := newTestServer(t, testOpts{})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ts.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(ts.addr, ":")
	script := "require [\"fileinto\"];\nif header :contains \"List-Id\" \"tern\" {\n  fileinto \"Lists\";\n}\n"
	local := filepath.Join(dir, "lists.sieve")
	if err := os.WriteFile(local, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		t.Helper()
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pw.WriteString(testPassword + "\n")
		pw.Close()
		defer pr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--server", "127.0.0.1", "--port", port,
			"--user", "alice", "--passwordfd", "3", "--authmech", "PLAIN",
			"--tlscafile", caFile, "--tlshostname", "localhost"}, args...)...)
		cmd.ExtraFiles = []*os.File{pr}
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		t.Logf("sieve-connect %s:\n%s", strings.Join(args, " "), out)
		return string(out), err
	}

	if _, err := run("--upload", "--localsieve", local, "--remotesieve", "lists"); err != nil {
		t.Fatalf("upload: %v", err)
	}
	a := ts.account("alice")
	if got, err := a.SieveScript(context.Background(), "lists"); err != nil || string(got) != script {
		t.Fatalf("stored script %q, %v", got, err)
	}
	if _, err := run("--activate", "--remotesieve", "lists"); err != nil {
		t.Fatalf("activate: %v", err)
	}
	out, err := run("--list")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if !strings.Contains(out, "lists") || !strings.Contains(out, "ACTIVE") {
		t.Fatalf("list output without the active script: %q", out)
	}
	if _, name, _ := a.ActiveSieveScript(context.Background()); name != "lists" {
		t.Fatalf("active script %q after --activate", name)
	}
	downloaded := filepath.Join(dir, "down.sieve")
	if _, err := run("--download", "--remotesieve", "lists", "--localsieve", downloaded); err != nil {
		t.Fatalf("download: %v", err)
	}
	if got, err := os.ReadFile(downloaded); err != nil || string(got) != script {
		t.Fatalf("downloaded %q, %v; want %q", got, err, script)
	}

	// The checker's refusal reaches the user.
	bad := filepath.Join(dir, "bad.sieve")
	os.WriteFile(bad, []byte("keep;\nbogus;\n"), 0o600)
	out, err = run("--upload", "--localsieve", bad, "--remotesieve", "bad")
	if err == nil || !strings.Contains(out, "unknown command") {
		t.Fatalf("upload of a bad script: %v, %q", err, out)
	}
	if _, err := a.SieveScript(context.Background(), "bad"); err == nil {
		t.Fatal("a refused script was stored")
	}

	if out, err := run("--delete", "--remotesieve", "lists"); err == nil {
		t.Fatalf("deleting the active script succeeded: %q", out)
	}
	if _, err := run("--deactivate"); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	if _, err := run("--delete", "--remotesieve", "lists"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if l, err := a.SieveScripts(context.Background()); err != nil || len(l) != 0 {
		t.Fatalf("scripts after delete: %v, %v", l, err)
	}
}
