package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// storeOpCount reads how often the server called a store operation
// (tern_store_operation_duration_seconds_count{op=...}) from /metrics.
func storeOpCount(t testing.TB, admin, op string) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	prefix := `tern_store_operation_duration_seconds_count{op="` + op + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.ParseFloat(l, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return int(n)
		}
	}
	io.Copy(io.Discard, resp.Body)
	return 0
}

// startIMAPSieveServe runs tern serve for user alice (password pw) with
// sieve.imapsieve as given, IMAP, ManageSieve and the admin listener on
// free loopback ports.
func startIMAPSieveServe(t testing.TB, imapsieve bool) (map[string]string, *syncBuffer, func()) {
	t.Helper()
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	conf := filepath.Join(dir, "tern.toml")
	c := fmt.Sprintf("data_dir = %q\n[sieve]\nimapsieve = %v\n", dir, imapsieve)
	if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServe(t, 3, "--config", conf, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
		"--listen-lmtp", "", "--listen-admin", "127.0.0.1:0", "--listen-managesieve", "127.0.0.1:0", "--insecure-auth")
}

// BenchmarkIMAPSieveStore: STORE over TCP on a mailbox without an
// IMAPSIEVE script, with sieve.imapsieve off and on. Reported besides
// the time: the store's metadata and script reads per STORE.
//
//	go test -run '^$' -bench BenchmarkIMAPSieveStore -benchtime 2000x ./cmd/tern/
func BenchmarkIMAPSieveStore(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run("imapsieve="+strconv.FormatBool(on), func(b *testing.B) {
			addrs, _, stop := startIMAPSieveServe(b, on)
			defer stop()
			ic := dialIMAP(b, addrs["imap"])
			ic.cmd("a1", "LOGIN alice pw")
			msg := "From: a@example.net\r\nSubject: x\r\n\r\nbody\r\n"
			ic.cmd("a2", "APPEND INBOX {%d+}\r\n%s", len(msg), msg)
			ic.cmd("a3", "SELECT INBOX")
			meta0 := storeOpCount(b, addrs["admin"], "get_metadata")
			script0 := storeOpCount(b, addrs["admin"], "sieve_script")
			i := 0
			for b.Loop() {
				op := "+FLAGS"
				if i%2 == 1 {
					op = "-FLAGS"
				}
				ic.cmd("s", `STORE 1 %s.SILENT (\Flagged)`, op)
				i++
			}
			b.StopTimer()
			b.ReportMetric(float64(storeOpCount(b, addrs["admin"], "get_metadata")-meta0)/float64(i), "metadata-reads/op")
			b.ReportMetric(float64(storeOpCount(b, addrs["admin"], "sieve_script")-script0)/float64(i), "script-reads/op")
		})
	}
}

// The IMAPSIEVE script lookup of STORE is cached: STOREs on a mailbox
// without a script read no metadata after the first; SETMETADATA naming
// a script takes effect at the next STORE, and so does a new version of
// that script stored over ManageSieve (both forget the cache); with the
// script in place, STOREs read neither metadata nor the script again.
func TestServeIMAPSieveCache(t *testing.T) {
	addrs, logBuf, stop := startIMAPSieveServe(t, true)
	defer stop()
	ic := dialIMAP(t, addrs["imap"])
	ic.cmd("a1", "LOGIN alice pw")
	msg := "From: a@example.net\r\nSubject: x\r\n\r\nbody\r\n"
	ic.cmd("a2", "APPEND INBOX {%d+}\r\n%s", len(msg), msg)
	ic.cmd("a3", "SELECT INBOX")
	admin := addrs["admin"]
	reads := func() (int, int) {
		return storeOpCount(t, admin, "get_metadata"), storeOpCount(t, admin, "sieve_script")
	}
	toggles := 0
	stores := func(n int) { // each one a change: \Flagged on, off, on...
		t.Helper()
		for range n {
			op := "+FLAGS"
			if toggles%2 == 1 {
				op = "-FLAGS"
			}
			toggles++
			ic.cmd("s", `STORE 1 %s.SILENT (\Flagged)`, op)
		}
	}
	flags := func() string {
		t.Helper()
		return strings.Join(ic.cmd("f", "FETCH 1 FLAGS"), "")
	}

	stores(1)
	m0, s0 := reads()
	stores(10)
	if m, s := reads(); m != m0 || s != s0 {
		t.Errorf("10 STOREs without a script: %d metadata and %d script reads, want 0", m-m0, s-s0)
	}

	sc := dialSieve(t, addrs["managesieve"])
	put := func(src string) {
		t.Helper()
		if got := sc.do(fmt.Sprintf("PUTSCRIPT \"mark\" {%d+}\r\n%s", len(src), src)); !strings.HasPrefix(got, "OK") {
			t.Fatalf("PUTSCRIPT: %q", got)
		}
	}
	if got := sc.do(plainAuth("alice", "pw")); !strings.HasPrefix(got, "OK") {
		t.Fatalf("login: %q", got)
	}
	put(`require ["imap4flags", "environment", "imapsieve"];
if environment :is "imap.cause" "FLAG" { addflag "$one"; }`)
	stores(1) // the cache holds "no script" again
	ic.cmd("a4", `SETMETADATA INBOX (/shared/imapsieve/script "mark")`)
	stores(1)
	if f := flags(); !strings.Contains(f, "$one") {
		t.Fatalf("the script named by SETMETADATA did not run: %s\n%s", f, logBuf.String())
	}
	m0, s0 = reads()
	stores(4)
	if m, s := reads(); m != m0 || s != s0 {
		t.Errorf("4 STOREs with a script: %d metadata and %d script reads, want 0", m-m0, s-s0)
	}
	put(`require ["imap4flags", "environment", "imapsieve"];
if environment :is "imap.cause" "FLAG" { addflag "$two"; }`)
	stores(1)
	if f := flags(); !strings.Contains(f, "$two") {
		t.Fatalf("the new version stored over ManageSieve did not run: %s", f)
	}
	ic.cmd("a5", `SETMETADATA INBOX (/shared/imapsieve/script NIL)`)
	ic.cmd("a6", `STORE 1 FLAGS.SILENT ()`)
	toggles = 0
	stores(1)
	if f := flags(); strings.Contains(f, "$two") {
		t.Fatalf("the script still runs after its entry was removed: %s", f)
	}
}

// tern serve warns when IMAPSIEVE= would send clients to a ManageSieve
// server that is not this one's listener (another port, another IP, or
// no listener), and says nothing when the URL matches it; clients over
// TCP see the URL in CAPABILITY either way.
func TestServeIMAPSieveURLCheck(t *testing.T) {
	needStore(t)
	// The ManageSieve port must be known before serve starts (the URL
	// names it): a port picked free can be taken by another test before
	// serve binds it, so a case whose bind fails is tried again with
	// another port.
	cases := func(port int) []imapsieveURLCase {
		return []imapsieveURLCase{
			{fmt.Sprintf("sieve://127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port), ""},
			{fmt.Sprintf("sieve://localhost:%d", port), fmt.Sprintf("127.0.0.1:%d", port), ""},
			{"sieve://127.0.0.1", "127.0.0.1:0", "names another port than the ManageSieve listener"},
			{fmt.Sprintf("sieve://127.0.0.2:%d", port), fmt.Sprintf("127.0.0.1:%d", port), "names another address"},
			{"sieve://mail.example.org", "", "ManageSieve listener is off"},
		}
	}
	for i := range len(cases(0)) {
		var tc imapsieveURLCase
		var addrs map[string]string
		var logBuf *syncBuffer
		var stop func()
		for attempt := 0; ; attempt++ {
			tc = cases(freePort(t))[i]
			dir := t.TempDir()
			if r := runT(t, "pw\n", "user", "add", "alice", "--data", dir); r.code != 0 {
				t.Fatalf("user add: %+v", r)
			}
			conf := filepath.Join(dir, "tern.toml")
			c := fmt.Sprintf("data_dir = %q\n[sieve]\nimapsieve = true\nimapsieve_url = %q\n", dir, tc.url)
			if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
				t.Fatal(err)
			}
			want := 1
			if tc.managesieve != "" {
				want = 2
			}
			var err error
			addrs, logBuf, _, stop, err = tryServe(t, want, "--config", conf, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
				"--listen-lmtp", "", "--listen-admin", "", "--listen-managesieve", tc.managesieve, "--insecure-auth")
			if err == nil {
				break
			}
			if attempt == 4 || !strings.Contains(logBuf.String(), "address already in use") {
				t.Fatalf("%s: %v: %s", tc.url, err, logBuf.String())
			}
		}
		ic := dialIMAP(t, addrs["imap"])
		ic.cmd("l", "LOGIN alice pw")
		if caps := strings.Join(ic.cmd("a", "CAPABILITY"), ""); !strings.Contains(caps, " IMAPSIEVE="+tc.url) {
			t.Errorf("%s: capabilities %s", tc.url, caps)
		}
		stop()
		log := logBuf.String()
		switch {
		case tc.warn == "" && strings.Contains(log, "imapsieve_url"):
			t.Errorf("%s on %s: unexpected warning: %s", tc.url, tc.managesieve, log)
		case tc.warn != "" && !strings.Contains(log, tc.warn):
			t.Errorf("%s on %s: no warning %q: %s", tc.url, tc.managesieve, tc.warn, log)
		}
	}
}

// [[sieve.imapsieve_mailbox]] rules run the operator's IMAPSIEVE scripts
// around a mailbox's own: on MOVE into Junk the rule's before script
// flags the message, alice's Junk script sees that flag and adds its
// own, and the rule's after script sees both and files a copy; a rule
// for APPEND to Archive/% runs for Archive/2026 but not for INBOX or
// Archive/2026/Q1 (% stops at "/") nor for COPY; a FLAG rule for every
// mailbox runs on STORE in a mailbox that has no script of its own.
func TestServeIMAPSieveOperatorRules(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "pw\n", "user", "add", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	write := func(name, src string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	train := write("train.sieve", `require ["imap4flags"]; addflag "$trained";`)
	archive := write("archive.sieve", `require ["fileinto", "copy", "imap4flags", "mailbox"];
if allof (hasflag "$trained", hasflag "$user") { fileinto :copy :create "Trained"; }`)
	stamp := write("stamp.sieve", `require ["imap4flags"]; addflag "$archived";`)
	ham := write("ham.sieve", `require ["imap4flags"]; addflag "$ham";`)
	notice := write("notice.sieve", `require ["imap4flags", "environment", "imapsieve"];
if environment :contains "imap.changedflags" "\\Flagged" { addflag "$noticed"; }`)
	if r := runT(t, `require ["imap4flags", "environment", "imapsieve"];
if allof (environment :is "imap.cause" "COPY", hasflag "$trained") { addflag "$user"; }`, "sieve", "put", "alice", "junk", "-", "--data", dir); r.code != 0 {
		t.Fatalf("sieve put: %+v", r)
	}
	conf := write("tern.toml", fmt.Sprintf(`data_dir = %q
[sieve]
imapsieve = true
[[sieve.imapsieve_mailbox]]
name = "Junk"
causes = ["COPY"]
before = [%q]
after = [%q]
[[sieve.imapsieve_mailbox]]
name = "Archive/%%"
causes = ["APPEND"]
before = [%q]
[[sieve.imapsieve_mailbox]]
name = "*"
causes = ["FLAG"]
after = [%q]
[[sieve.imapsieve_mailbox]]
name = "*"
from = "Junk"
before = [%q]
`, dir, train, archive, stamp, notice, ham))
	addrs, logBuf, stop := startServe(t, 1, "--config", conf, "--listen-imap", "127.0.0.1:0", "--listen-imaps", "",
		"--listen-lmtp", "", "--listen-admin", "", "--insecure-auth")
	defer stop()
	if !strings.Contains(logBuf.String(), "imapsieve_rules=4") {
		t.Errorf("start log: %s", logBuf.String())
	}
	ic := dialIMAP(t, addrs["imap"])
	ic.cmd("a1", "LOGIN alice pw")
	ic.cmd("a2", `SETMETADATA Junk (/shared/imapsieve/script "junk")`)
	ic.cmd("a3", "CREATE Archive/2026/Q1")
	msg := "From: a@example.net\r\nSubject: x\r\n\r\nbody\r\n"
	appendTo := func(mb string) {
		t.Helper()
		ic.cmd("ap", "APPEND %s {%d+}\r\n%s", mb, len(msg), msg)
	}
	flagsIn := func(mb string) string {
		t.Helper()
		ic.cmd("se", "EXAMINE %s", mb)
		return strings.Join(ic.cmd("fe", "FETCH 1:* FLAGS"), "")
	}
	appendTo("INBOX")
	appendTo("Archive/2026")
	appendTo("Archive/2026/Q1")
	ic.cmd("a4", "SELECT INBOX")
	ic.cmd("a5", "COPY 1 Archive/2026")
	ic.cmd("a6", "MOVE 1 Junk")

	if f := flagsIn("Junk"); !strings.Contains(f, "$trained") || !strings.Contains(f, "$user") {
		t.Errorf("Junk: %s", f)
	}
	if f := flagsIn("Trained"); !strings.Contains(f, "* 1 FETCH") {
		t.Errorf("Trained: %s", f)
	}
	if f := flagsIn("Archive/2026"); !strings.Contains(f, "* 1 FETCH (FLAGS ($archived") || strings.Count(f, "$archived") != 1 {
		t.Errorf("Archive/2026 (APPEND, then COPY): %s", f)
	}
	if f := flagsIn("Archive/2026/Q1"); strings.Contains(f, "$archived") {
		t.Errorf("Archive/2026/Q1: %s", f)
	}
	appendTo("INBOX")
	ic.cmd("a7", "SELECT INBOX")
	ic.cmd("a8", `STORE 1 +FLAGS (\Flagged)`)
	if f := flagsIn("INBOX"); !strings.Contains(f, "$noticed") || strings.Contains(f, "$archived") || strings.Contains(f, "$ham") {
		t.Errorf("INBOX after STORE: %s", f)
	}
	// Out of Junk (from = "Junk"): the ham rule; into Junk: not.
	ic.cmd("a9", "SELECT Junk")
	ic.cmd("b1", "MOVE 1 Archive/2026/Q1")
	if f := flagsIn("Archive/2026/Q1"); !strings.Contains(f, "* 2 FETCH (FLAGS ($ham $trained $user") {
		t.Errorf("moved out of Junk: %s", f)
	}
	if f := flagsIn("Archive/2026"); strings.Contains(f, "$ham") {
		t.Errorf("copied from INBOX: %s", f)
	}
}

// imapsieveURLCase is one IMAPSIEVE URL against a ManageSieve listener
// ("" for none) and the warning serve must log ("" for none).
type imapsieveURLCase struct {
	url, managesieve, warn string
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
