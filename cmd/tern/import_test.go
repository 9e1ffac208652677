package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImportExportCommands(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	for _, u := range []string{"alice", "bob"} {
		if r := runT(t, "pw\n", "user", "add", u, "--data", dir); r.code != 0 {
			t.Fatalf("user add: %+v", r)
		}
	}
	mbox := filepath.Join(t.TempDir(), "old.mbox")
	os.WriteFile(mbox, []byte("From a@example.org Mon Jan  6 10:00:00 2025\nSubject: 1\nStatus: RO\n\none\n\n"+
		"From a@example.org Mon Jan  6 11:00:00 2025\nSubject: 2\n\ntwo\n"), 0o600)
	r := runT(t, "", "import", "alice", mbox, "--mailbox", "Old", "--data", dir)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "imported 2 messages") || !strings.Contains(r.stdout, "skipped 0 already present") {
		t.Fatalf("import: %+v", r)
	}
	r = runT(t, "", "import", "alice", mbox, "--mailbox", "Old", "--data", dir)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "imported 0 messages") || !strings.Contains(r.stdout, "skipped 2 already present") {
		t.Fatalf("re-import: %+v", r)
	}
	if got := storedBodies(t, dir, "alice", "Old"); len(got) != 2 || got[0] != "Subject: 1\r\n\r\none\r\n" {
		t.Fatalf("Old = %q", got)
	}
	out := filepath.Join(t.TempDir(), "exp")
	r = runT(t, "", "export", "alice", out, "--format", "mbox", "--data", dir)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "exported 2 messages") {
		t.Fatalf("export: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(out, "Old")); err != nil {
		t.Fatalf("no Old mbox: %v", err)
	}
	if r := runT(t, "", "import", "bob", out, "--data", dir); r.code != 0 || !strings.HasPrefix(r.stdout, "imported 2 messages") {
		t.Fatalf("import export: %+v", r)
	}
	if got := storedBodies(t, dir, "bob", "Old"); len(got) != 2 || got[1] != "Subject: 2\r\n\r\ntwo\r\n" {
		t.Fatalf("bob's Old = %q", got)
	}
	if r := runT(t, "", "export", "alice", out, "--data", dir); r.code != exitError || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("export into non-empty dir: %+v", r)
	}
	if r := runT(t, "", "export", "alice", out, "--format", "zip", "--data", dir); r.code != exitUsage {
		t.Fatalf("bad format: %+v", r)
	}
	if r := runT(t, "", "import", "nobody", mbox, "--data", dir); r.code != exitError || !strings.Contains(r.stderr, "no user") {
		t.Fatalf("unknown user: %+v", r)
	}
}
