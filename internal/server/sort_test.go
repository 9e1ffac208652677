package server_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// appendDated APPENDs msg with an internal date.
func (c *client) appendDated(date, msg string) {
	c.t.Helper()
	msg = crlf(msg)
	tag := fmt.Sprintf("T%d", c.tag.Add(1))
	c.write(fmt.Sprintf("%s APPEND INBOX \"%s\" {%d+}\r\n%s\r\n", tag, date, len(msg), msg))
	if _, tagged := c.readUntil(tag); !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("APPEND: %q", tagged)
	}
}

func sortFixture(t *testing.T) *client {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	msgs := []struct{ date, msg string }{
		// 1 (expunged below, so sequence numbers and UIDs differ)
		{"01-Jan-2024 00:00:00 +0000", "From: zed@x\nSubject: gone\n\nx\n"},
		// 2 -> seq 1
		{"05-Jan-2024 10:00:00 +0000", "From: Carol <carol@x>\nTo: bob@y\nSubject: Re: Lunch\nDate: Wed, 3 Jan 2024 10:00:00 +0000\nMessage-ID: <2@x>\nIn-Reply-To: <3@x>\n\n" + strings.Repeat("x", 200) + "\n"},
		// 3 -> seq 2
		{"02-Jan-2024 10:00:00 +0000", "From: alice@x\nTo: Dave <dave@y>\nSubject: lunch\nDate: Tue, 2 Jan 2024 10:00:00 +0000\nMessage-ID: <3@x>\n\n" + strings.Repeat("x", 100) + "\n"},
		// 4 -> seq 3
		{"03-Jan-2024 10:00:00 +0000", "From: =?utf-8?q?Bob?= <zz@x>\nTo: alice@y\nSubject: [list] Agenda\nDate: Wed, 3 Jan 2024 03:00:00 -0700\nMessage-ID: <4@x>\n\n" + strings.Repeat("x", 50) + "\n"},
		// 5 -> seq 4
		{"04-Jan-2024 10:00:00 +0000", "From: bob@x\nSubject: Fwd: lunch (fwd)\nMessage-ID: <5@x>\nReferences: <3@x> <2@x>\n\nb\n"},
	}
	for _, m := range msgs {
		c.appendDated(m.date, m.msg)
	}
	c.ok("SELECT INBOX")
	c.ok("STORE 1 +FLAGS \\Deleted")
	c.ok("EXPUNGE")
	return c
}

func TestSort(t *testing.T) {
	c := sortFixture(t)
	for _, tc := range []struct{ cmd, want string }{
		{"SORT (ARRIVAL) UTF-8 ALL", "* SORT 2 3 4 1"},
		{"SORT (REVERSE ARRIVAL) US-ASCII ALL", "* SORT 1 4 3 2"},
		// Sent dates, compared in UTC: seq 1 and 3 share 3 Jan 10:00;
		// seq 4 has none and uses its internal date (4 Jan). Ties keep
		// sequence order, whatever REVERSE applies to.
		{"SORT (DATE) UTF-8 ALL", "* SORT 2 1 3 4"},
		{"SORT (REVERSE DATE) UTF-8 ALL", "* SORT 4 1 3 2"},
		{"SORT (DATE ARRIVAL) UTF-8 ALL", "* SORT 2 3 1 4"},
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 3 1 2 4"},
		{"SORT (SUBJECT REVERSE ARRIVAL) UTF-8 ALL", "* SORT 3 1 4 2"},
		{"SORT (FROM) UTF-8 ALL", "* SORT 2 4 1 3"},
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 3 4 1"},
		{"SORT (TO) UTF-8 ALL", "* SORT 4 3 1 2"},
		{"SORT (DISPLAYTO) UTF-8 ALL", "* SORT 4 3 1 2"},
		{"SORT (CC SIZE) UTF-8 ALL", "* SORT 4 3 2 1"},
		{"SORT (REVERSE SIZE) UTF-8 ALL", "* SORT 1 2 3 4"},
		{"SORT (SUBJECT) UTF-8 SUBJECT lunch", "* SORT 1 2 4"},
		{"SORT (ARRIVAL) UTF-8 2:3 NOT FROM bob", "* SORT 2"},
		{"SORT (ARRIVAL) UTF-8 SUBJECT nothing", "* SORT"},
		{"UID SORT (ARRIVAL) UTF-8 ALL", "* SORT 3 4 5 2"},
		{"UID SORT (SUBJECT) UTF-8 UID 3:5", "* SORT 4 3 5"},
	} {
		hasLine(t, c.ok(tc.cmd), tc.want)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"SORT (ARRIVAL) KOI9 ALL", "NO [BADCHARSET"},
		{"SORT (COLOR) UTF-8 ALL", "BAD"},
		{"SORT () UTF-8 ALL", "BAD"},
		{"SORT (ARRIVAL) UTF-8", "BAD"},
		{"SORT ARRIVAL UTF-8 ALL", "BAD"},
		{"SORT (REVERSE) UTF-8 ALL", "BAD"},
	} {
		c.expect(tc.cmd, tc.want)
	}
}

func TestESort(t *testing.T) {
	c := sortFixture(t)
	for _, tc := range []struct{ cmd, want string }{
		{"SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL", `* ESEARCH (TAG "%s") MIN 3 MAX 4 COUNT 4 ALL 3,1:2,4`},
		{"SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL", `* ESEARCH (TAG "%s") ALL 1,4,3,2`},
		{"SORT RETURN (COUNT) (ARRIVAL) UTF-8 SUBJECT nothing", `* ESEARCH (TAG "%s") COUNT 0`},
		{"SORT RETURN (MIN) (ARRIVAL) UTF-8 SUBJECT nothing", `* ESEARCH (TAG "%s")`},
		{"UID SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL", `* ESEARCH (TAG "%s") UID ALL 3:5,2`},
	} {
		lines := c.ok(tc.cmd)
		hasLine(t, lines, fmt.Sprintf(tc.want, c.lastTag()))
	}
	c.expect("SORT RETURN (PARTIAL 1:*) (ARRIVAL) UTF-8 ALL", "BAD")
	// SAVE keeps the MIN/MAX messages for "$".
	c.ok("SORT RETURN (SAVE MIN) (SUBJECT) UTF-8 ALL")
	hasLine(t, c.ok("SEARCH $"), "* SEARCH 3")
}

func TestThread(t *testing.T) {
	c := sortFixture(t)
	for _, tc := range []struct{ cmd, want string }{
		// seq 2 (<3@x>) is the root; seq 1 replies to it, seq 4
		// references both; seq 3 stands alone.
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD (2 1 4)(3)"},
		{"UID THREAD REFERENCES UTF-8 ALL", "* THREAD (3 2 5)(4)"},
		{"THREAD REFERENCES UTF-8 NOT 1", "* THREAD (2 4)(3)"},
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (2 (1)(4))(3)"},
		{"UID THREAD ORDEREDSUBJECT US-ASCII ALL", "* THREAD (3 (2)(5))(4)"},
		{"THREAD REFERENCES UTF-8 SUBJECT nothing", "* THREAD"},
	} {
		hasLine(t, c.ok(tc.cmd), tc.want)
	}
	c.expect("THREAD SUBJECTS UTF-8 ALL", "BAD")
	c.expect("THREAD REFERENCES KOI9 ALL", "NO [BADCHARSET")
	c.expect("THREAD REFERENCES UTF-8", "BAD")

	// THREADID (RFC 8474): the three messages of the lunch thread share
	// one, the agenda has its own.
	lines := c.ok("FETCH 1:4 (THREADID)")
	re := regexp.MustCompile(`^\* (\d) FETCH \(THREADID \((\S+)\)\)$`)
	ids := map[string]string{}
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			ids[m[1]] = m[2]
		}
	}
	if len(ids) != 4 || ids["1"] != ids["2"] || ids["4"] != ids["2"] || ids["3"] == ids["2"] {
		t.Fatalf("THREADIDs: %v from\n%s", ids, strings.Join(lines, "\n"))
	}
	hasLine(t, c.ok("SEARCH THREADID "+ids["2"]), "* SEARCH 1 2 4")
}

func TestSortCapabilityAndState(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	lines := c.ok("CAPABILITY")
	for _, w := range []string{"SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "ESORT"} {
		if !strings.Contains(" "+lines[0]+" ", " "+w+" ") {
			t.Errorf("capability %s missing in %q", w, lines[0])
		}
	}
	c.expect("SORT (ARRIVAL) UTF-8 ALL", "BAD")
	c.expect("THREAD REFERENCES UTF-8 ALL", "BAD")
	c.ok("SELECT INBOX")
	hasLine(t, c.ok("SORT (ARRIVAL) UTF-8 ALL"), "* SORT")
	hasLine(t, c.ok("THREAD REFERENCES UTF-8 ALL"), "* THREAD")
}
