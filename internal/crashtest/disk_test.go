package crashtest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFull runs the server on a small tmpfs: APPENDs fail with a clear
// NO once the disk is full, nothing already stored is damaged, the server
// keeps answering, and writes work again when space returns. Needs root
// (mount); skipped otherwise.
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	dir := filepath.Join(mnt, "data")
	newDataDir(t, dir)
	s := startServer(t, dir)
	defer func() { s.stop() }()
	c, err := dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.login("alice", "secret"); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	acked := map[uint32][32]byte{}
	var noResp string
	for i := 0; i < 200; i++ {
		body := randomMessage(r, 0, i)
		for len(body) < 200<<10 { // ~200 KiB each: 8 MiB fill after ~40
			body = append(body, fmt.Sprintf("padding %x %x\r\n", r.Uint64(), r.Uint64())...)
		}
		st, err := c.appendMsg("INBOX", "", body, false)
		if err != nil {
			t.Fatalf("APPEND %d: connection failed instead of NO: %v\n%s", i, err, s.logTail())
		}
		if strings.HasPrefix(st, "NO") {
			noResp = st
			break
		}
		m := appendUIDRe.FindStringSubmatch(st)
		if m == nil {
			t.Fatalf("APPEND %d: %q", i, st)
		}
		uid, _ := strconv.ParseUint(m[2], 10, 32)
		acked[uint32(uid)] = sha256.Sum256(body)
	}
	if noResp == "" {
		t.Fatal("the disk never filled up")
	}
	t.Logf("disk full after %d messages: %q", len(acked), noResp)
	if !strings.HasPrefix(noResp, "NO [OVERQUOTA]") || strings.Contains(noResp, "SERVERBUG") {
		t.Errorf("disk full answer is not a clear NO: %q", noResp)
	}
	// The server still answers and everything stored is intact.
	verifyAcked := func(c *client) {
		t.Helper()
		if _, _, err := c.ok("SELECT INBOX"); err != nil {
			t.Fatal(err)
		}
		us, _, err := c.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[])")
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseFetch(us)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[uint32]bool{}
		for _, f := range got {
			if sum, ok := acked[f.uid]; ok {
				if sha256.Sum256(f.body) != sum {
					t.Errorf("UID %d damaged", f.uid)
				}
				seen[f.uid] = true
			}
		}
		if len(seen) != len(acked) {
			t.Errorf("%d of %d acknowledged messages present", len(seen), len(acked))
		}
		if _, _, err := c.ok("UNSELECT"); err != nil {
			t.Fatal(err)
		}
	}
	verifyAcked(c)
	// Other writes fail cleanly too (or succeed); the session survives.
	for _, cmd := range []string{"CREATE Full1", `STORE 1 +FLAGS (\Flagged $Big)`, "NOOP"} {
		if cmd[0] == 'S' {
			c.ok("SELECT INBOX")
		}
		_, st, err := c.do(cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		t.Logf("%s while full: %q", cmd, st)
	}
	c.ok("UNSELECT")

	// Restart while the disk is still full: the store opens and serves.
	s.stop()
	s = startServer(t, dir)
	c.close()
	if c, err = dial(s.addr); err != nil {
		t.Fatal(err)
	}
	if err := c.login("alice", "secret"); err != nil {
		t.Fatalf("login on a full disk: %v\n%s", err, s.logTail())
	}
	verifyAcked(c)

	// Space returns: writes work again.
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("remount: %v", err)
	}
	body := bytes.Repeat([]byte("after the disk filled up\r\n"), 1000)
	body = append([]byte("Subject: recovered\r\n\r\n"), body...)
	st, err := c.appendMsg("INBOX", "", body, false)
	if err != nil || !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND after space returned: %q %v", st, err)
	}
	m := appendUIDRe.FindStringSubmatch(st)
	uid, _ := strconv.ParseUint(m[2], 10, 32)
	acked[uint32(uid)] = sha256.Sum256(body)
	verifyAcked(c)
	c.close()
	s.stop()
	if n := checkStore(t, dir, true); n > 0 {
		t.Logf("tern check: %d leftover file(s) of failed writes removed", n)
	}
	if code, out, errs := runTern(t, "", "check", "--data", dir); code != 0 {
		t.Fatalf("tern check: %d %s %s", code, out, errs)
	}
}
