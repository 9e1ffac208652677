package server_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// modseqOf extracts "MODSEQ (n)" from a FETCH line.
func modseqOf(t *testing.T, line string) uint64 {
	t.Helper()
	m := regexp.MustCompile(`MODSEQ \((\d+)\)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no MODSEQ in %q", line)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func highestModSeq(t *testing.T, lines []string) uint64 {
	t.Helper()
	for _, l := range lines {
		if m := regexp.MustCompile(`^\* OK \[HIGHESTMODSEQ (\d+)\]`).FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no HIGHESTMODSEQ in %q", lines)
	return 0
}

func uidValidity(t *testing.T, lines []string) string {
	t.Helper()
	for _, l := range lines {
		if m := regexp.MustCompile(`^\* OK \[UIDVALIDITY (\d+)\]`).FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no UIDVALIDITY in %q", lines)
	return ""
}

func TestCondstoreBasics(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	for i := 0; i < 4; i++ {
		c.appendMsg("INBOX", "", simpleMsg)
	}
	u := c.ok("SELECT INBOX (CONDSTORE)")
	h0 := highestModSeq(t, u)

	u = c.ok("FETCH 1:* (UID MODSEQ)")
	if len(u) != 4 {
		t.Fatalf("fetch modseq: %q", u)
	}
	for _, l := range u {
		if modseqOf(t, l) > h0 {
			t.Fatalf("message modseq above HIGHESTMODSEQ %d: %q", h0, l)
		}
	}
	// A STORE gives the message a new, higher MODSEQ and reports it.
	u = c.ok("STORE 2 +FLAGS (\\Flagged)")
	// Under CONDSTORE every FETCH reporting a flag change carries UID and
	// MODSEQ (RFC 7162 §3.2.4).
	if len(u) != 1 || !strings.HasPrefix(u[0], `* 2 FETCH (UID 2 FLAGS (\Flagged \Recent) MODSEQ (`) {
		t.Fatalf("store: %q", u)
	}
	m2 := modseqOf(t, u[0])
	if m2 <= h0 {
		t.Fatalf("modseq %d not above %d", m2, h0)
	}
	// .SILENT under CONDSTORE still reports MODSEQ, without FLAGS.
	u = c.ok("UID STORE 3 +FLAGS.SILENT (\\Seen)")
	if len(u) != 1 || !regexp.MustCompile(`^\* 3 FETCH \(UID 3 MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf("silent store: %q", u)
	}
	m3 := modseqOf(t, u[0])

	// CHANGEDSINCE returns only what changed, with MODSEQ.
	u = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE " + strconv.FormatUint(m2-1, 10) + ")")
	if len(u) != 2 || !strings.HasPrefix(u[0], "* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (") || !strings.HasPrefix(u[1], "* 3 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (") {
		t.Fatalf("changedsince: %q", u)
	}
	// UNCHANGEDSINCE: message 2 changed after h0, so it fails (MODIFIED
	// in sequence numbers); message 1 passes.
	_, tagged := c.do("STORE 1:2 (UNCHANGEDSINCE " + strconv.FormatUint(h0, 10) + ") +FLAGS (\\Answered)")
	if tagged != "OK [MODIFIED 2] Conditional STORE failed for some messages" {
		t.Fatalf("unchangedsince: %q", tagged)
	}
	// UNCHANGEDSINCE 0 always fails for existing messages.
	_, tagged = c.do("UID STORE 4 (UNCHANGEDSINCE 0) +FLAGS (\\Answered)")
	if tagged != "OK [MODIFIED 4] Conditional STORE failed for some messages" {
		t.Fatalf("unchangedsince 0: %q", tagged)
	}
	// SEARCH MODSEQ reports the highest modseq of the matches.
	hasLine(t, c.ok("SEARCH MODSEQ "+strconv.FormatUint(m2, 10)), "* SEARCH 1 2 3 (MODSEQ "+strconv.FormatUint(max(m3, m2+2), 10)+")")
	u = c.ok("STATUS Sent (HIGHESTMODSEQ MAILBOXID)")
	if len(u) != 1 || !regexp.MustCompile(`^\* STATUS Sent \(HIGHESTMODSEQ \d+ MAILBOXID \(F[0-9a-f]+\)\)$`).MatchString(u[0]) {
		t.Fatalf("status: %q", u)
	}
}

// TestThreeDeviceSync drives three clients on one mailbox: a phone idling,
// a laptop changing flags, expunging and moving, and a tablet that was
// offline and resynchronises with QRESYNC.
func TestThreeDeviceSync(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	laptop := ts.login("alice", "secret")
	for i := 0; i < 6; i++ {
		laptop.appendMsg("INBOX", "", simpleMsg)
	}

	// The tablet syncs once and goes offline, remembering HIGHESTMODSEQ.
	tablet := ts.login("alice", "secret")
	hasLine(t, tablet.ok("ENABLE QRESYNC"), "* ENABLED QRESYNC")
	u := tablet.ok("SELECT INBOX")
	uv := uidValidity(t, u)
	offlineAt := highestModSeq(t, u)
	tablet.ok("LOGOUT")

	phone := ts.login("alice", "secret")
	phone.ok("ENABLE QRESYNC")
	phone.ok("SELECT INBOX")
	phone.write("P1 IDLE\r\n")
	if l := phone.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("idle: %q", l)
	}

	laptop.ok("SELECT INBOX")
	u = laptop.ok("UID STORE 2 +FLAGS.SILENT (\\Seen)")
	if len(u) != 0 {
		t.Fatalf("silent store without CONDSTORE sent %q", u)
	}
	// The idling phone sees the flag change at once, with UID and MODSEQ
	// since QRESYNC is on.
	l := phone.readLine()
	if !regexp.MustCompile(`^\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$`).MatchString(l) {
		t.Fatalf("phone flag update: %q", l)
	}
	laptop.ok("UID STORE 3,5 +FLAGS.SILENT (\\Deleted)")
	phone.readLine()
	phone.readLine()
	laptop.ok("EXPUNGE")
	if l := phone.readLine(); l != "* VANISHED 3,5" {
		t.Fatalf("phone expunge: %q", l)
	}
	u = laptop.ok("UID MOVE 6 Archive")
	if u[len(u)-1] != "* 4 EXPUNGE" {
		t.Fatalf("laptop move: %q", u)
	}
	if l := phone.readLine(); l != "* VANISHED 6" {
		t.Fatalf("phone move: %q", l)
	}
	laptop.appendMsg("INBOX", "", simpleMsg) // UID 7, after the tablet went offline
	if l := phone.readLine(); l != "* 4 EXISTS" {
		t.Fatalf("phone new mail: %q", l)
	}
	// \Recent goes to whichever session claims it first.
	if l := phone.readLine(); l != "* 1 RECENT" && l != "* 0 RECENT" {
		t.Fatalf("phone new mail: %q", l)
	}
	laptop.ok("UID STORE 7 +FLAGS.SILENT (\\Deleted)")
	phone.readLine()
	laptop.ok("UID EXPUNGE 7")
	if l := phone.readLine(); l != "* VANISHED 7" {
		t.Fatalf("phone uid expunge: %q", l)
	}
	phone.write("DONE\r\n")
	if l := phone.readLine(); l != "P1 OK IDLE completed" {
		t.Fatalf("phone done: %q", l)
	}

	// The tablet comes back: VANISHED (EARLIER) names only the UIDs it could
	// know (3, 5, 6 — not 7, which came and went while it was away), then
	// the flag change of UID 2.
	tablet = ts.login("alice", "secret")
	tablet.ok("ENABLE QRESYNC")
	u, tagged := tablet.do("SELECT INBOX (QRESYNC (" + uv + " " + strconv.FormatUint(offlineAt, 10) + "))")
	if tagged != "OK [READ-WRITE] SELECT completed" {
		t.Fatalf("qresync select: %q", tagged)
	}
	var vanished, fetches []string
	for _, l := range u {
		if strings.HasPrefix(l, "* VANISHED") {
			vanished = append(vanished, l)
		}
		if strings.Contains(l, " FETCH ") {
			fetches = append(fetches, l)
		}
	}
	if len(vanished) != 1 || vanished[0] != "* VANISHED (EARLIER) 3,5:6" {
		t.Fatalf("vanished: %q", u)
	}
	if len(fetches) != 1 || !regexp.MustCompile(`^\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$`).MatchString(fetches[0]) {
		t.Fatalf("changed: %q", u)
	}
	// known-uids limits VANISHED to what the client says it has.
	u = tablet.ok("SELECT INBOX (QRESYNC (" + uv + " " + strconv.FormatUint(offlineAt, 10) + " 1:4))")
	hasLine(t, u, "* OK [CLOSED] Previous mailbox closed")
	hasLine(t, u, "* VANISHED (EARLIER) 3")
	// A wrong UIDVALIDITY gets no resync data.
	u = tablet.ok("SELECT INBOX (QRESYNC (1 " + strconv.FormatUint(offlineAt, 10) + "))")
	for _, l := range u {
		if strings.Contains(l, "VANISHED") || strings.Contains(l, "FETCH") {
			t.Fatalf("resync data for a wrong UIDVALIDITY: %q", l)
		}
	}
	// UID FETCH (CHANGEDSINCE VANISHED).
	u = tablet.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE " + strconv.FormatUint(offlineAt, 10) + " VANISHED)")
	if len(u) != 2 || u[0] != "* VANISHED (EARLIER) 3,5:6" || !strings.HasPrefix(u[1], `* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (`) {
		t.Fatalf("uid fetch vanished: %q", u)
	}
	tablet.expect("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "BAD")
	// eM Client's form: CONDSTORE and QRESYNC parameters together, without
	// a prior ENABLE.
	other := ts.login("alice", "secret")
	u = other.ok("SELECT INBOX (CONDSTORE QRESYNC (" + uv + " " + strconv.FormatUint(offlineAt, 10) + "))")
	hasLine(t, u, "* VANISHED (EARLIER) 3,5:6")
}

func TestCondstoreUIDInEveryFlagFetch(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	b := ts.login("alice", "secret")
	a.appendMsg("INBOX", "", simpleMsg)
	a.ok("SELECT INBOX")
	// ENABLE while selected reports HIGHESTMODSEQ at once.
	u := a.ok("ENABLE CONDSTORE")
	hasLine(t, u, "* ENABLED CONDSTORE")
	highestModSeq(t, u)
	b.ok("SELECT INBOX")
	b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
	u = a.ok("NOOP")
	if len(u) != 1 || !regexp.MustCompile(`^\* 1 FETCH \(UID 1 FLAGS \(\\Flagged( \\Recent)?\) MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf("external flag change: %q", u)
	}
	u = a.ok("FETCH 1 BODY[TEXT]")
	if len(u) != 1 || !regexp.MustCompile(`BODY\[TEXT\] \{12\}\r\nHello Bob\.\r\n UID 1 FLAGS \(\\Flagged \\Seen( \\Recent)?\) MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf("implicit \\Seen: %q", u)
	}
}
