package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestAppendMissingOrNoselect: APPEND (and MULTIAPPEND) into a mailbox of
// the user's own that does not exist is NO [TRYCREATE], into a \Noselect
// one NO [CANNOT], and stores nothing; the store finds that out itself
// (appendTarget does not look the mailbox up first).
func TestAppendMissingOrNoselect(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	lit := func(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }
	c.expect("APPEND Nope "+lit(simpleMsg), "NO [TRYCREATE]")
	c.expect("APPEND Nope "+lit(simpleMsg)+" "+lit(simpleMsg), "NO [TRYCREATE]")
	c.expect("APPEND nope/child "+lit(simpleMsg), "NO [TRYCREATE]")
	c.ok("CREATE a/b")
	c.ok("DELETE a") // a has a child: it stays, \Noselect
	c.expect("APPEND a "+lit(simpleMsg), "NO [CANNOT]")
	c.appendMsg("a/b", "", simpleMsg)
	for _, mb := range []string{"Nope", "a"} {
		u, _ := c.do("STATUS " + mb + " (MESSAGES)")
		if len(u) != 0 {
			t.Fatalf("STATUS %s after the failed APPENDs: %q", mb, u)
		}
	}
	u := c.ok("STATUS INBOX (MESSAGES)")
	if len(u) != 1 || !strings.Contains(u[0], "(MESSAGES 0)") {
		t.Fatalf("STATUS INBOX: %q", u)
	}
	c.ok("CREATE Nope")
	c.appendMsg("Nope", "", simpleMsg)
}
