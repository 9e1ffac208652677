package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/delivery"
)

// TestBigboxAgainstTern generates a small "big" mailbox, imports it into a
// real tern server as bench/bigbox.sh does (tern import of the Maildir),
// runs two measured passes and checks every command was measured with the
// expected answer sizes, then the table.
func TestBigboxAgainstTern(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 400
	dir := filepath.Join(t.TempDir(), "Maildir")
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"bigbox", "gen", "--messages", strconv.Itoa(n), "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("gen: exit %d: %s", code, errb.String())
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "cur")); len(ents) != n {
		t.Fatalf("gen wrote %d files, want %d", len(ents), n)
	}
	// The same messages as mbox: same count of "From " separators.
	mbox := filepath.Join(t.TempDir(), "big.mbox")
	if code := run(ctx, []string{"bigbox", "gen", "--format", "mbox", "--messages", "50", "--out", mbox}, &out, &errb); code != 0 {
		t.Fatalf("gen mbox: exit %d: %s", code, errb.String())
	}
	if b, _ := os.ReadFile(mbox); bytes.Count(b, []byte("\n\nFrom bigbox@")) != 49 {
		t.Fatalf("mbox has %d separators, want 49", bytes.Count(b, []byte("\n\nFrom bigbox@")))
	}

	addr, st := startTernStore(t, "user1")
	acct, err := st.Account(ctx, "user1")
	if err != nil {
		t.Fatal(err)
	}
	stats, err := delivery.Import(ctx, acct, dir, delivery.ImportOptions{})
	if err != nil || stats.Imported != n {
		t.Fatalf("import: %d messages, %v", stats.Imported, err)
	}
	host, port, _ := net.SplitHostPort(addr)
	var lines bytes.Buffer
	for round := 1; round <= 2; round++ {
		out.Reset()
		errb.Reset()
		code := run(ctx, []string{"bigbox", "run", "--host", host, "--port", port, "--password", "secret",
			"--label", "tern", "--round", strconv.Itoa(round), "--stores", "100", "--singles", "30", "--settle", "10ms", "--timeout", "1m",
			"--server-pid", strconv.Itoa(os.Getpid())}, &out, &errb)
		if code != 0 {
			t.Fatalf("run round %d: exit %d: %s%s", round, code, out.String(), errb.String())
		}
		got := map[string]bigboxLine{}
		for _, s := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			l, ok := parseBigboxLine(s)
			if !ok || !l.hasCPU || !l.hasDisk {
				t.Fatalf("bad line %q", s)
			}
			got[l.cmd] = l
		}
		for _, c := range bigboxCmds {
			if l, ok := got[c.name]; !ok || l.ms <= 0 {
				t.Errorf("round %d: %s not measured: %+v", round, c.name, l)
			}
		}
		unseen := got["search-unseen"].items
		for cmd, want := range map[string]float64{"select": n, "fetch-flags": n, "fetch-body-20": 20, "changedsince": 10,
			"store-1000": 100, "store-single": 30, "sort": n, "thread": n} {
			if got[cmd].items != want {
				t.Errorf("round %d: %s returned %v items, want %v", round, cmd, got[cmd].items, want)
			}
		}
		if unseen < n/100 || unseen > n/4 {
			t.Errorf("round %d: %v unseen of %d", round, unseen, n)
		}
		// Pretend a second server answered more slowly, for the table.
		lines.WriteString(out.String())
		lines.WriteString(strings.ReplaceAll(strings.ReplaceAll(out.String(), "label=tern", "label=other"), " ms=", " ms=1"))
	}
	f := filepath.Join(t.TempDir(), "lines")
	os.WriteFile(f, lines.Bytes(), 0o644)
	out.Reset()
	if code := run(ctx, []string{"bigbox", "table", f}, &out, &errb); code != 0 {
		t.Fatalf("table: exit %d: %s", code, errb.String())
	}
	table := out.String()
	for _, c := range bigboxCmds {
		if !strings.Contains(table, "| `"+c.text+"` |") {
			t.Errorf("table lacks %s:\n%s", c.name, table)
		}
	}
	if !strings.Contains(table, "| tern/other speed") || !strings.Contains(table, "| tern disk KiB | other disk KiB |") || !strings.Contains(table, "| 2/2 |") {
		t.Errorf("table header or runs wrong:\n%s", table)
	}
}

func TestParseBigboxLine(t *testing.T) {
	l, ok := parseBigboxLine("bigbox label=dovecot round=3 cmd=sort ms=12.5 items=7 bytes=99 cpu_ms=20 disk_kib=48")
	if !ok || l.label != "dovecot" || l.cmd != "sort" || l.ms != 12.5 || l.items != 7 || !l.hasCPU || l.cpuMS != 20 || !l.hasDisk || l.disk != 48 {
		t.Fatalf("parse: %+v %v", l, ok)
	}
	for _, s := range []string{"", "bigbox", "bigbox label=x cmd=y", "other label=x cmd=y ms=1"} {
		if _, ok := parseBigboxLine(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
}
