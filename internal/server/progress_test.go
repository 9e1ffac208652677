package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// RFC 9585: a long SEARCH sends INPROGRESS responses carrying its tag, a
// count that never goes down and a fixed goal, before its result. The
// interval is shortened so that every message is "long". No background
// indexer: the three messages stay unindexed, so all three are read (a
// message the index decides is not counted in the goal).
func TestSearchInProgress(t *testing.T) {
	ts := newTestServer(t, serverOpts{noTextIndexer: true, mutate: func(c *server.Config) { c.ProgressInterval = 1 }})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	for range 3 {
		c.appendMsg("INBOX", "", simpleMsg)
	}
	c.ok("SELECT INBOX")
	u := c.ok("SEARCH TEXT Bob")
	tag := c.lastTag()
	var last int
	n := 0
	for _, l := range u {
		if !strings.HasPrefix(l, "* OK [INPROGRESS ") {
			continue
		}
		n++
		var gotTag string
		var done, goal int
		if _, err := fmt.Sscanf(l, "* OK [INPROGRESS (%q %d %d)] Still working", &gotTag, &done, &goal); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if gotTag != tag || goal != 3 || done < last || done > goal {
			t.Fatalf("bad progress %q after %d", l, last)
		}
		last = done
	}
	if n == 0 {
		t.Fatalf("no INPROGRESS in %q", u)
	}
	if u[len(u)-1] != "* SEARCH 1 2 3" {
		t.Fatalf("result not last: %q", u)
	}
}

// With the default interval a quick SEARCH sends none; negative turns
// them off.
func TestSearchNoProgress(t *testing.T) {
	for _, every := range []int64{0, -1} {
		ts := newTestServer(t, serverOpts{mutate: func(c *server.Config) { c.ProgressInterval = time.Duration(every) }})
		ts.addUser("alice", "secret")
		c := ts.login("alice", "secret")
		c.appendMsg("INBOX", "", simpleMsg)
		c.ok("SELECT INBOX")
		if u := c.ok("SEARCH TEXT Bob"); len(u) != 1 || u[0] != "* SEARCH 1" {
			t.Fatalf("interval %d: %q", every, u)
		}
	}
}
