package server_test

import (
	"strings"
	"testing"
)

// TestSearchFuzzy: SEARCH=FUZZY (RFC 6203) with the RFC's examples, over
// the full-text index and, before the mail is indexed, by reading it:
// FUZZY (SUBJECT "IMAP break") also finds "broken IMAP"; a FUZZY key and
// an exact one in one command; RETURN (RELEVANCY ALL) gives one score
// per message of ALL, 100 for the exact text and less for near misses
// ("hello", "help" for "Helo"); SORT (RELEVANCY) puts the best first and
// SORT RETURN (RELEVANCY ALL) lists the scores in sort order; RELEVANCY
// without FUZZY is BAD; SAVE keeps the fuzzy matches for "$".
func TestSearchFuzzy(t *testing.T) {
	dir := t.TempDir()
	open, indexNow := sharedTextStore(t, dir)
	ts := newTestServer(t, serverOpts{dataDir: dir, noTextIndexer: true, openStore: open})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	if caps := c.ok("CAPABILITY"); len(caps) == 0 || !strings.Contains(caps[0]+" ", " SEARCH=FUZZY ") {
		t.Fatalf("SEARCH=FUZZY not announced: %q", caps)
	}
	for _, m := range []string{
		"From: user@example.com\nSubject: IMAP break\n\nplain words\n",   // 1
		"From: bob@example.org\nSubject: broken IMAP\n\nhello there\n",   // 2
		"From: user@example.com\nSubject: IMAP is broken\n\nneed help\n", // 3
		"From: carol@example.net\nSubject: lunch\n\nnothing relevant\n",  // 4
		"From: dan@example.net\nSubject: work\n\nsay helo exactly\n",     // 5
		"From: user@example.com\nSubject: workshop\n\nthe agenda\n",      // 6
	} {
		c.appendMsg("INBOX", "", crlf(m))
	}
	c.ok("SELECT INBOX")
	check := func(phase string) {
		t.Helper()
		hasLine(t, c.ok(`SEARCH FUZZY (SUBJECT "IMAP break")`), "* SEARCH 1 2 3")
		// A fuzzy SUBJECT and an exact FROM.
		hasLine(t, c.ok(`SEARCH FUZZY SUBJECT work FROM user@example.com`), "* SEARCH 6")
		hasLine(t, c.ok(`SEARCH SUBJECT work FROM user@example.com`), "* SEARCH 6")
		hasLine(t, c.ok(`SEARCH FUZZY SUBJECT workk`), "* SEARCH 5 6")
		lines := c.ok(`SEARCH RETURN (RELEVANCY ALL) FUZZY TEXT "Helo"`)
		hasLine(t, lines, `* ESEARCH (TAG "`+c.lastTag()+`") ALL 2:3,5 RELEVANCY (1 1 100)`)
		lines = c.ok(`SORT (RELEVANCY) UTF-8 FUZZY TEXT "Helo"`)
		hasLine(t, lines, "* SORT 5 2 3")
		lines = c.ok(`SORT RETURN (RELEVANCY ALL) (RELEVANCY) UTF-8 FUZZY TEXT "Helo"`)
		hasLine(t, lines, `* ESEARCH (TAG "`+c.lastTag()+`") ALL 5,2:3 RELEVANCY (100 1 1)`)
		lines = c.ok(`UID SEARCH RETURN (RELEVANCY) FUZZY (SUBJECT "IMAP break")`)
		hasLine(t, lines, `* ESEARCH (TAG "`+c.lastTag()+`") UID RELEVANCY (100 1 1)`)
		// SEARCHRES: SAVE with RELEVANCY saves the matches.
		lines = c.ok(`SEARCH RETURN (SAVE RELEVANCY) FUZZY BODY "helo"`)
		hasLine(t, lines, `* ESEARCH (TAG "`+c.lastTag()+`") RELEVANCY (1 1 100)`)
		hasLine(t, c.ok(`SEARCH $`), "* SEARCH 2 3 5")
		// Non-text keys match exactly under FUZZY.
		hasLine(t, c.ok(`SEARCH FUZZY (LARGER 1 UID 4:5)`), "* SEARCH 4 5")
		for _, cmd := range []string{
			`SEARCH RETURN (RELEVANCY) SUBJECT work`,
			`SORT (RELEVANCY) UTF-8 SUBJECT work`,
			`SEARCH FUZZY`,
		} {
			if _, tagged := c.do(cmd); !strings.HasPrefix(tagged, "BAD") {
				t.Fatalf("%s: %q: %q", phase, cmd, tagged)
			}
		}
	}
	check("not indexed")
	indexNow("alice")
	check("indexed")
}

// TestFuzzyUpdate: a live fuzzy result (RFC 5267 UPDATE with RFC 6203's
// RELEVANCY). The command's own response carries the scores; the
// updates carry ADDTO/REMOVEFROM only, as RFC 5267 §4.3 has it ("There
// is no interaction between UPDATE and any other return options") and
// RFC 6203 defines RELEVANCY data only for the messages a command
// returns. A SORT by relevancy keeps placing new matches by their score.
func TestFuzzyUpdate(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	for _, m := range []string{
		"Subject: work\n\nx\n",     // 1: exact, 100
		"Subject: lunch\n\nx\n",    // 2
		"Subject: workshop\n\nx\n", // 3: exact substring, 100
		"Subject: worms\n\nx\n",    // 4: a near miss
	} {
		c.appendMsg("INBOX", "", crlf(m))
	}
	c.ok("SELECT INBOX")
	t1 := nextTag(c)
	expectLines(t, c, `UID SEARCH RETURN (UPDATE ALL RELEVANCY) FUZZY SUBJECT workk`,
		`* ESEARCH (TAG "`+t1+`") UID ALL 1,3:4 RELEVANCY (50 50 1)`)
	t2 := nextTag(c)
	expectLines(t, c, `UID SORT RETURN (UPDATE ALL RELEVANCY) (RELEVANCY) UTF-8 FUZZY SUBJECT work`,
		`* ESEARCH (TAG "`+t2+`") UID ALL 1,3:4 RELEVANCY (100 100 1)`)
	expectLines(t, c, `APPEND INBOX () `+lit(crlf("Subject: work plan\n\nx\n")),
		`* 5 EXISTS`, `* 5 RECENT`,
		`* ESEARCH (TAG "`+t1+`") UID ADDTO (0 5)`,
		`* ESEARCH (TAG "`+t2+`") UID ADDTO (3 5)`)
	c.ok(`UID STORE 3 +FLAGS.SILENT (\Deleted)`)
	expectLines(t, c, "EXPUNGE",
		`* ESEARCH (TAG "`+t1+`") UID REMOVEFROM (0 3)`,
		`* ESEARCH (TAG "`+t2+`") UID REMOVEFROM (2 3)`,
		`* 3 EXPUNGE`)
}
