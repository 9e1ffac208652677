package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupRestoreCommands: tern backup and tern restore round-trip a data
// directory (tern check is clean afterwards), and refuse a non-empty
// DEST, a non-empty restore target and a directory without a backup.
func TestBackupRestoreCommands(t *testing.T) {
	needStore(t)
	root := t.TempDir()
	data, dest, restored := filepath.Join(root, "data"), filepath.Join(root, "backup"), filepath.Join(root, "restored")
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", data); r.code != exitOK {
		t.Fatalf("user add: %+v", r)
	}
	// One body kept in mail.db, one (above sqlite.DefaultInlineBodyMax) in a file.
	msgs := []string{"Subject: hi\r\n\r\nhello\r\n", "Subject: big\r\n\r\n" + strings.Repeat("padding line\r\n", 5000)}
	for _, msg := range msgs {
		if r := runT(t, msg, "deliver", "--user", "alice", "--data", data); r.code != exitOK {
			t.Fatalf("deliver: %+v", r)
		}
	}

	if r := runT(t, "", "backup", "--help"); r.code != exitOK || !strings.Contains(r.stdout, "VACUUM INTO") {
		t.Fatalf("backup --help: %+v", r)
	}
	if r := runT(t, "", "backup", "--data", data); r.code != exitUsage {
		t.Fatalf("backup without DEST: %+v", r)
	}
	if r := runT(t, "", "backup", dest, "--data", filepath.Join(root, "none")); r.code != exitError || !strings.Contains(r.stderr, "no store in") {
		t.Fatalf("backup of no store: %+v", r)
	}
	r := runT(t, "", "backup", dest, "--data", data)
	if r.code != exitOK || !strings.Contains(r.stdout, `user "alice": 6 mailboxes, 2 messages`) ||
		!strings.Contains(r.stdout, "1 users, 2 messages, 1 body files") {
		t.Fatalf("backup: %+v", r)
	}
	if r := runT(t, "", "backup", dest, "--data", data); r.code != exitError || !strings.Contains(r.stderr, "tern backup: "+dest+": directory exists and is not empty") {
		t.Fatalf("backup into the same DEST again: %+v", r)
	}

	// --since is for a postgres store's backups only.
	if r := runT(t, "", "backup", filepath.Join(root, "since"), "--since", dest, "--data", data); r.code != exitUsage || !strings.Contains(r.stderr, "--since works with a postgres store only") {
		t.Fatalf("backup --since of an embedded store: %+v", r)
	}
	if r := runT(t, "", "restore", dest, "--data", data); r.code != exitError || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore over the data directory: %+v", r)
	}
	if r := runT(t, "", "restore", data, "--data", restored); r.code != exitError || !strings.Contains(r.stderr, "not a complete tern backup") {
		t.Fatalf("restore of a data directory: %+v", r)
	}
	if _, err := os.Stat(restored); !os.IsNotExist(err) {
		t.Fatalf("a refused restore created its target: %v", err)
	}
	if r := runT(t, "", "restore", dest, "--data", restored); r.code != exitOK || !strings.Contains(r.stdout, "store is consistent") {
		t.Fatalf("restore: %+v", r)
	}
	if r := runT(t, "", "check", "--data", restored); r.code != exitOK {
		t.Fatalf("check of the restored directory: %+v", r)
	}
	if r := runT(t, "", "user", "list", "--data", restored); r.code != exitOK || strings.TrimSpace(r.stdout) != "alice" {
		t.Fatalf("user list of the restored directory: %+v", r)
	}
	if got := storedBodies(t, restored, "alice", "INBOX"); len(got) != 2 || !strings.HasSuffix(got[0], msgs[0]) || !strings.HasSuffix(got[1], msgs[1]) {
		t.Fatalf("restored INBOX: %d messages, not the delivered ones", len(got))
	}
	if r := runT(t, "", "restore", dest, "--data", restored); r.code != exitError || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore into the restored directory again: %+v", r)
	}
}

// TestBackupOutboundQueue: tern backup carries the outbound queue
// (queued and failed messages with their retry states) and tern restore
// puts it back; unacknowledged writes in tmp/ are left out.
func TestBackupOutboundQueue(t *testing.T) {
	needStore(t)
	root := t.TempDir()
	data, dest, restored := filepath.Join(root, "data"), filepath.Join(root, "backup"), filepath.Join(root, "restored")
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", data); r.code != exitOK {
		t.Fatalf("user add: %+v", r)
	}
	files := map[string]string{
		"outbound/queue/100-aa":        `{"from":"","to":["bob@example.net"]}` + "\nSubject: away\r\n\r\nreply\r\n",
		"outbound/queue/100-aa.retry":  `{"attempts":3,"next":"2030-01-01T00:00:00Z"}` + "\n",
		"outbound/failed/050-bb":       `{"from":"x@example.net","to":["carol@example.net"]}` + "\nSubject: fwd\r\n\r\nbody\r\n",
		"outbound/failed/050-bb.retry": `{"attempts":9,"last_error":"550 no"}` + "\n",
		"outbound/tmp/200-cc":          "half written",
	}
	for rel, content := range files {
		p := filepath.Join(data, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if r := runT(t, "", "backup", dest, "--data", data); r.code != exitOK || strings.Contains(r.stdout, "not backed up: "+filepath.Join(data, "outbound")) {
		t.Fatalf("backup: %+v", r)
	}
	if r := runT(t, "", "restore", dest, "--data", restored); r.code != exitOK {
		t.Fatalf("restore: %+v", r)
	}
	for rel, content := range files {
		got, err := os.ReadFile(filepath.Join(restored, rel))
		if strings.HasPrefix(rel, "outbound/tmp/") {
			if err == nil {
				t.Errorf("%s restored", rel)
			}
			continue
		}
		if err != nil || string(got) != content {
			t.Errorf("%s restored as %q (%v), want %q", rel, got, err, content)
		}
	}
}
